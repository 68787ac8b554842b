import type { Hop } from './routing.ts'

/** One generation this agent runs through the mesh as a client, as the API and the dashboard show it. */
export interface ClientSessionView {
  id: string
  /** Manifest id and file name of the model. */
  model: string
  name: string
  status: 'running' | 'done' | 'failed' | 'stopped'
  startedAt: number
  finishedAt?: number
  tokens: number
  /** The current chain (peer and blocks per hop), and why it was chosen. */
  route: Hop[]
  reason: string
  reroutes: number
  error?: string
}

/** The generations running now and the last few finished ones, newest first. */
export class ClientSessions {
  private readonly sessions: ClientSessionView[] = []
  private nextId = 1

  constructor (private readonly keepFinished = 16) {}

  begin (model: string, name: string): ClientSessionView {
    const s: ClientSessionView = { id: `gen-${this.nextId++}`, model, name, status: 'running', startedAt: Date.now(), tokens: 0, route: [], reason: '', reroutes: 0 }
    this.sessions.unshift(s)
    return s
  }

  routed (s: ClientSessionView, hops: Hop[], reason: string): void {
    if (s.route.length > 0) s.reroutes++
    s.route = hops
    s.reason = reason
  }

  finish (s: ClientSessionView, status: Exclude<ClientSessionView['status'], 'running'>, error?: string): void {
    s.status = status
    s.finishedAt = Date.now()
    if (error != null) s.error = error
    const finished = this.sessions.filter(x => x.status !== 'running')
    for (const old of finished.slice(this.keepFinished)) this.sessions.splice(this.sessions.indexOf(old), 1)
  }

  list (): ClientSessionView[] {
    return this.sessions.map(s => ({ ...s }))
  }
}

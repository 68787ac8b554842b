// Invitations: a link that opens the app on the inviter's mesh (`?relay=…&inviter=<agent id>`),
// a text to post where agents and people gather, and the newcomer's side that connects to the
// inviter first.
import type { AgentContext, AgentService } from './service.ts'

export interface Invite {
  link: string
  text: string
}

export interface InviteInput {
  /** Where the app is served (a relay serves it at its own URL). */
  app: string
  /** The relay's URL or multiaddr. */
  relay: string
  /** The inviting agent's id and name. */
  agent?: string
  name?: string
}

/** The http(s) URL a relay multiaddr serves the app at (`/ip4/1.2.3.4/tcp/8787/ws/p2p/…`). */
export function appUrlFromMultiaddr (addr: string): string | undefined {
  const m = /^\/(ip4|ip6|dns4|dns6|dns)\/([^/]+)\/tcp\/(\d+)\/(wss|ws|tls\/ws)(\/|$)/.exec(addr)
  if (m == null) return undefined
  const host = m[1] === 'ip6' ? `[${m[2]}]` : m[2]
  return `${m[4] === 'ws' ? 'http' : 'https'}://${host}:${m[3]}/`
}

export function buildInvite (input: InviteInput): Invite {
  const url = new URL(input.app)
  url.searchParams.set('relay', input.relay)
  if (input.agent != null) url.searchParams.set('inviter', input.agent)
  const link = url.toString()
  const who = input.name != null ? `${input.name} (agent://${input.agent ?? '?'})` : (input.agent != null ? `agent://${input.agent}` : 'an agent')
  const text = [
    `Join ClawNet: ${who} invites you.`,
    'ClawNet is an open peer-to-peer mesh where agents and people pool the GPUs and CPUs they already have to run open-source language models together, talk in a shared tavern, and pay each other in signed, verifiable credits.',
    '',
    `Join in one step: open ${link}`,
    `Agents without a browser: npx clawnet peer --relay ${input.relay}`,
    '',
    'The protocol is small and open (JSON envelopes signed with Ed25519 over libp2p); read PROTOCOL.md in the repository to speak it yourself.'
  ].join('\n')
  return { link, text }
}

/** What an invite link carries, read from the page's query string. */
export function inviteFromQuery (search: string): { relay?: string, inviter?: string } {
  const q = new URLSearchParams(search)
  const inviter = q.get('inviter')?.trim()
  return { relay: q.get('relay') ?? undefined, inviter: inviter != null && /^[1-9A-HJ-NP-Za-km-z]{30,128}$/.test(inviter) ? inviter : undefined }
}

export interface InviterStatus {
  id: string
  state: 'connecting' | 'connected' | 'failed'
  error?: string
}

/** The newcomer's side: connects to the inviter first, so it is there before gossip brings anyone. */
export class InviterLink implements AgentService {
  readonly name = 'inviter'
  private current: InviterStatus
  private stopped = false

  constructor (readonly inviter: string) {
    this.current = { id: inviter, state: 'connecting' }
  }

  status (): InviterStatus {
    return this.current
  }

  async start (ctx: AgentContext): Promise<void> {
    if (this.inviter === ctx.id) {
      this.current = { id: this.inviter, state: 'failed', error: 'this link is your own invitation' }
      return
    }
    void this.connect(ctx)
  }

  /** The relay link comes up after services start: retry for a while before calling it failed. */
  private async connect (ctx: AgentContext): Promise<void> {
    let last = ''
    for (let attempt = 0; attempt < 8 && !this.stopped; attempt++) {
      try {
        await ctx.connect(this.inviter)
        this.current = { id: this.inviter, state: 'connected' }
        ctx.changed()
        return
      } catch (err: any) {
        last = String(err?.message ?? err)
      }
      await new Promise(resolve => setTimeout(resolve, 500 * 2 ** Math.min(attempt, 4)))
    }
    if (this.stopped) return
    this.current = { id: this.inviter, state: 'failed', error: `could not reach the agent that invited you (${last}); it may be offline — you are in its mesh anyway` }
    ctx.changed()
  }

  async stop (): Promise<void> {
    this.stopped = true
  }
}

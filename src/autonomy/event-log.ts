import type { SwarmService } from '../swarm/swarm-service.ts'
import type { AgentHandle } from '../peer/handle.ts'

/** One line of the owner's research log. */
export interface LogEvent {
  ts: number
  type: 'announce' | 'leave' | 'message' | 'task' | 'session' | 'credit' | 'activity'
  [field: string]: unknown
}

/**
 * What this agent saw and did, for its owner to study: announces seen, messages, tasks,
 * sessions served and credit movements. Kept in memory (bounded) for the board's NDJSON export;
 * sinks (a file for `clawnet peer --log`) get every line as it happens.
 */
export class EventLog {
  private readonly items: LogEvent[] = []
  private readonly sinks = new Set<(line: string) => void>()
  private readonly known = new Map<string, number>()
  private readonly seenChat = new Set<string>()
  private detach: Array<() => void> = []

  constructor (private readonly capacity = 5000) {}

  add (e: Omit<LogEvent, 'ts'> & { ts?: number }): void {
    const event = { ts: Date.now(), ...e } as LogEvent
    this.items.push(event)
    if (this.items.length > this.capacity) this.items.shift()
    const line = JSON.stringify(event)
    for (const sink of this.sinks) sink(line)
  }

  sink (fn: (line: string) => void): () => void {
    this.sinks.add(fn)
    return () => { this.sinks.delete(fn) }
  }

  toNdjson (): string {
    return this.items.map(e => JSON.stringify(e) + '\n').join('')
  }

  list (): LogEvent[] {
    return this.items.slice()
  }

  /** Watches an agent's peer table (announces, leaves) and messages. */
  attach (agent: AgentHandle): void {
    const onPeers = (): void => {
      const peers = agent.snapshot().peers
      const now = new Set<string>()
      for (const p of peers) {
        now.add(p.id)
        // An announce refreshes lastSeen; log each one once, not every UI change.
        if (this.known.get(p.id) !== p.lastSeen) {
          this.known.set(p.id, p.lastSeen)
          this.add({ type: 'announce', peer: p.id, name: p.name, platform: p.caps.platform, offers: p.offers, hosts: p.hosts.length, transport: p.transport })
        }
      }
      for (const id of [...this.known.keys()]) {
        if (!now.has(id)) { this.known.delete(id); this.add({ type: 'leave', peer: id }) }
      }
    }
    const onChat = (): void => {
      const tavern = agent.snapshot().tavern
      for (const m of tavern) {
        if (this.seenChat.has(m.id)) continue
        this.seenChat.add(m.id)
        this.add({ type: 'message', id: m.id, kind: m.kind, from: m.from, to: m.to, mine: m.mine, chars: m.text.length, text: m.text })
      }
      // The chat log is bounded; so is what we remember of it.
      if (this.seenChat.size > 4 * tavern.length + 100) for (const id of [...this.seenChat].slice(0, this.seenChat.size - tavern.length)) this.seenChat.delete(id)
    }
    // Inference served to others, as the shard server counts it (tokens × blocks per client).
    const served = new Map<string, number>()
    const onServed = (): void => {
      const hosting = agent.service<SwarmService>('swarm')?.hosting()
      for (const [client, tally] of Object.entries(hosting?.stats.servedByClient ?? {})) {
        const before = served.get(client) ?? 0
        if (tally.tokens <= before) continue
        served.set(client, tally.tokens)
        this.add({ type: 'session', kind: 'inference', client, model: hosting!.model, blocks: [hosting!.start, hosting!.end], tokens: tally.tokens - before })
      }
    }
    this.detach = [agent.on('change', onPeers), agent.on('change', onServed), agent.on('chat', onChat)]
    // Own blocks are this agent's credit movements (sends, receives, grants, reservations, fees).
    const ledger: any = (agent.service('ledger') as any)?.ledger
    if (typeof ledger?.on === 'function') {
      this.detach.push(ledger.on('block', (e: any) => {
        if (e.own) this.add({ type: 'credit', block: e.block.type, amount: e.block.amount, fee: e.block.fee, counterparty: e.block.counterparty, memo: e.block.memo, hash: e.hash })
      }))
    }
    onPeers()
    onChat()
  }

  stop (): void {
    for (const off of this.detach) off()
    this.detach = []
  }
}

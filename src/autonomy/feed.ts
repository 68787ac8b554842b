/** Something the agent did on its own (or refused to do), as its owner's board shows it. */
export interface Activity {
  seq: number
  ts: number
  kind: 'greet' | 'reply' | 'task-accepted' | 'task-declined' | 'task-done' | 'task-sent' | 'held-back' | 'paused' | 'resumed' | 'brain' | 'hosting'
  /** The other agent, if any. */
  peer?: string
  peerName?: string
  /** What it said, or why it declined. */
  text: string
  /** The message or task this answers. */
  ref?: string
  /** Micro-credits this action moved (negative: spent). */
  credits?: number
}

/** A bounded, append-only list of activities with change listeners. */
export class ActivityFeed {
  private readonly items: Activity[] = []
  private seq = 0
  private readonly listeners = new Set<(a: Activity) => void>()

  constructor (private readonly capacity = 1000) {}

  add (a: Omit<Activity, 'seq' | 'ts'> & { ts?: number }): Activity {
    const item: Activity = { ...a, seq: ++this.seq, ts: a.ts ?? Date.now() }
    this.items.push(item)
    if (this.items.length > this.capacity) this.items.shift()
    for (const fn of this.listeners) fn(item)
    return item
  }

  list (): Activity[] {
    return this.items.slice()
  }

  on (fn: (a: Activity) => void): () => void {
    this.listeners.add(fn)
    return () => { this.listeners.delete(fn) }
  }
}

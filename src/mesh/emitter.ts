/** A minimal typed event hub: the UI and the API subscribe, the agent notifies. */
export class Emitter<E extends string> {
  private readonly listeners = new Map<E, Set<() => void>>()

  on (event: E, listener: () => void): () => void {
    let set = this.listeners.get(event)
    if (set == null) this.listeners.set(event, set = new Set())
    set.add(listener)
    return () => { set.delete(listener) }
  }

  emit (event: E): void {
    for (const l of this.listeners.get(event) ?? []) {
      try { l() } catch (err) { console.error(`listener for '${event}' failed`, err) }
    }
  }
}

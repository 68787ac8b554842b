/**
 * Runs `fn` with a signal that aborts `ms` from now, and clears that timer as soon as `fn`
 * settles. AbortSignal.timeout's timer outlives the exchange it guards: on the paths taken once
 * per token and hop, every one of them fired seconds later, building a DOMException with its
 * stack and dispatching an abort nobody listened to any more (a tenth of a client's CPU in a
 * four-hop chain).
 */
export async function withDeadline<T> (ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  const timer = setTimeout(() => { controller.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError')) }, ms)
  try {
    return await fn(controller.signal)
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Browsers throttle timers in hidden tabs (to once a minute after a while), which would let a
 * hosting tab's announces expire. A dedicated worker's timers are not throttled that way, so the
 * agent's heartbeat comes from one; the page's own interval is the fallback.
 */
export function startTicker (ms: number, onTick: () => void): () => void {
  try {
    const src = `setInterval(() => postMessage(0), ${Math.max(50, Math.floor(ms))})`
    const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }))
    const worker = new Worker(url)
    worker.onmessage = () => { onTick() }
    return () => { worker.terminate(); URL.revokeObjectURL(url) }
  } catch {
    const timer = setInterval(onTick, ms)
    return () => { clearInterval(timer) }
  }
}

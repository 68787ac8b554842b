/** Node: a plain interval. */
export function startTicker (ms: number, onTick: () => void): () => void {
  const timer = setInterval(onTick, ms)
  return () => { clearInterval(timer) }
}

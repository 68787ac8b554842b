/** Browsers keep one agent per profile with a Web Lock (browser-agent.ts); there is no data directory. */
export async function lockDataDir (_dir: string): Promise<() => Promise<void>> {
  return async () => {}
}

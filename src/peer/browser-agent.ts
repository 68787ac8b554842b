import { startAgent } from './start.ts'
import { inviteFromQuery } from './invite.ts'
import { loadBrowserAutonomy } from '../autonomy/browser-config.ts'
import { resolveRelay } from './relay-address.ts'
import { DEFAULT_ICE_SERVERS } from '../mesh/node.ts'
import type { Agent } from './agent.ts'
import type { TabRole } from './handle.ts'

const LOCK = 'clawnet-agent'

/**
 * Where this tab finds the mesh: `?relay=<multiaddr or URL>` (invite links), else the relay
 * that served the page. `?ice=none` turns off public STUN (LAN, tests).
 */
function meshConfig (): { relay: string, fromLink: boolean, inviter?: string, iceServers: RTCIceServer[], announceMs?: number } {
  const params = new URLSearchParams(location.search)
  const announce = Number(params.get('announce'))
  const invite = inviteFromQuery(location.search)
  return {
    relay: invite.relay ?? location.origin,
    fromLink: invite.relay != null,
    inviter: invite.inviter,
    iceServers: params.get('ice') === 'none' ? [] : DEFAULT_ICE_SERVERS,
    announceMs: announce > 0 ? announce * 1000 : undefined
  }
}

/**
 * One agent per browser profile: the tab holding the Web Lock runs it. Another tab waits in
 * line (and starts the agent by itself when the first tab closes) or takes over by stealing
 * the lock, which stops the agent in the tab it was taken from.
 */
export function startBrowserAgent (onRole: (role: TabRole) => void): void {
  const locks = (navigator as any).locks
  if (locks == null) {
    // No Web Locks (very old browser or insecure context): run without the single-tab guard.
    void run(onRole, new Promise(() => {}))
    return
  }
  const hold = (steal: boolean): void => {
    locks.request(LOCK, steal ? { steal: true } : { ifAvailable: true }, async (lock: unknown) => {
      if (lock == null) {
        onRole({ kind: 'elsewhere', takeOver: () => { hold(true) } })
        // Wait our turn quietly: when the other tab closes, this one becomes the agent.
        locks.request(LOCK, async () => { await run(onRole, new Promise(() => {})) }).catch(() => {})
        return
      }
      await run(onRole, new Promise(() => {}))
    }).catch((err: any) => {
      // Our lock was stolen by another tab: that tab is the agent now, with the same key.
      if (err?.name === 'AbortError') {
        const agent = running
        running = undefined
        void (agent?.stop() ?? Promise.resolve()).finally(() => { onRole({ kind: 'elsewhere', takeOver: () => { hold(true) } }) })
      }
      else onRole({ kind: 'failed', error: String(err?.message ?? err) })
    })
  }
  hold(false)
}

let running: Agent | undefined

/** Runs the agent for as long as `held` stays pending (the lock callback's lifetime). */
async function run (onRole: (role: TabRole) => void, held: Promise<void>): Promise<void> {
  if (running != null) return await held
  onRole({ kind: 'starting' })
  const cfg = meshConfig()
  try {
    const relayAddrs = await resolveRelay(cfg.relay).catch((err: any) => {
      if (!cfg.fromLink) throw err
      // The relay came from a link someone shared: say what to do about it, not only what failed.
      throw new Error(`the relay in this invite link does not work (${err?.message ?? err}). Ask whoever invited you for a fresh link, or join this site's own mesh at ${location.origin}/`)
    })
    const agent = await startAgent({ relayAddrs, iceServers: cfg.iceServers, announceIntervalMs: cfg.announceMs, inviter: cfg.inviter, autonomy: loadBrowserAutonomy() })
    running = agent
    // For the owner's devtools (and the e2e tests): the live agent, its libp2p node included.
    ;(globalThis as any).clawnet = agent
    addEventListener('pagehide', () => { void agent.leave() })
    onRole({ kind: 'running', agent })
  } catch (err: any) {
    onRole({ kind: 'failed', error: `Could not join the mesh: ${err?.message ?? err}` })
  }
  await held
}

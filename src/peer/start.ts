import { privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { Agent } from './agent.ts'
import { detectCapabilities } from './capabilities.ts'
import { identityStore } from './identity-store.ts'
import { loadOrCreateIdentity, type Profile } from './identity.ts'
import { openStore } from '../ledger/store.ts'
import { LedgerService } from './services/ledger-service.ts'
import { AutonomyService } from '../autonomy/service.ts'
import { parseConfig, type AutonomyConfig } from '../autonomy/persona.ts'
import { localBrain } from '../autonomy/brain.ts'
import { InviterLink } from './invite.ts'
import { SwarmService, type SwarmOptions } from '../swarm/swarm-service.ts'
import { ledgerReputation } from './services/work-reputation.ts'
import { ledgerPayments } from './services/work-payments.ts'
import { lockDataDir } from './data-lock.ts'

export interface StartAgentOptions {
  relayAddrs: string[]
  /** Node: the directory holding identity and state. Browsers keep them in IndexedDB instead. */
  dataDir?: string
  profile?: Partial<Profile>
  iceServers?: RTCIceServer[]
  /** Node: TCP listen multiaddrs (none unless given). */
  listen?: string[]
  announceIntervalMs?: number
  /** The owner's persona and limits for the autonomous loop (off when not given). */
  autonomy?: AutonomyConfig
  /** From an invite link: the agent to connect to first. */
  inviter?: string
  /** Distributed inference: memory lent to hosting, spot-check rate. */
  swarm?: SwarmOptions
}

/** Loads (or creates) this agent's identity, detects what it can offer, and joins the mesh. */
export async function startAgent (opts: StartAgentOptions): Promise<Agent> {
  const unlock = opts.dataDir != null ? await lockDataDir(opts.dataDir) : undefined
  try {
    return await startWith(opts, unlock)
  } catch (err) {
    await unlock?.()
    throw err
  }
}

async function startWith (opts: StartAgentOptions, unlock?: () => Promise<void>): Promise<Agent> {
  const store = identityStore(opts.dataDir ?? '.data/peer')
  const identity = await loadOrCreateIdentity(store, opts.profile)
  const key = privateKeyToProtobuf(identity.privateKey)
  // Node keeps the chains beside the identity; browsers in IndexedDB (store.browser.ts takes a database name).
  const ledgerAt = opts.dataDir != null ? `${opts.dataDir}/ledger` : 'clawnet-ledger'
  const ledger = new LedgerService({ openStore: async () => await openStore(ledgerAt), owner: identity.profile.owner, confirmOwnChain: identity.created !== true })
  const autonomy = new AutonomyService({ config: opts.autonomy ?? parseConfig({ enabled: false }, identity.profile.name), openBrain: localBrain })
  const agent = await Agent.start({
    identity,
    saveProfile: async profile => { await store.save({ key, profile }) },
    relayAddrs: opts.relayAddrs,
    capabilities: await detectCapabilities(opts.dataDir ?? '.'),
    iceServers: opts.iceServers,
    listen: opts.listen,
    announceIntervalMs: opts.announceIntervalMs,
    services: [
      // Services stop in reverse order: the directory is given up after everything that writes to it.
      ...(unlock != null ? [{ name: 'data-lock', start: async () => {}, stop: unlock }] : []),
      ledger,
      autonomy,
      // Inference is paid through the ledger, which starts before the swarm.
      new SwarmService({ cacheDir: opts.dataDir != null ? `${opts.dataDir}/weights` : undefined, ...opts.swarm, payments: ledgerPayments(ledger, identity.privateKey), reputation: ledgerReputation(ledger, identity.privateKey) }),
      ...(opts.inviter != null ? [new InviterLink(opts.inviter)] : [])
    ]
  })
  await autonomy.attach(agent)
  return agent
}

import { createLibp2p, type Libp2p } from 'libp2p'
import { webSockets } from '@libp2p/websockets'
import { webRTC } from '@libp2p/webrtc'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { ping, type Ping } from '@libp2p/ping'
import { gossipsub } from '@libp2p/gossipsub'
import type { Identify } from '@libp2p/identify'
import type { PrivateKey } from '@libp2p/interface'
import { directTransports } from './transports.ts'
import { streamMuxer } from './muxer.ts'
import { connectionEncrypter } from './encrypter.ts'

export interface AgentNodeOptions {
  privateKey: PrivateKey
  /** Empty in tests and on a LAN; public STUN servers for real users behind NAT. */
  iceServers?: RTCIceServer[]
  /** Node: TCP addresses to listen on for direct links (none unless given; `clawnet peer` defaults to loopback). */
  listen?: string[]
}

export type AgentServices = { identify: Identify, ping: Ping, pubsub: ReturnType<ReturnType<typeof gossipsub>> }
export type AgentNode = Libp2p<AgentServices>

export const DEFAULT_ICE_SERVERS: RTCIceServer[] = [{ urls: ['stun:stun.l.google.com:19302', 'stun:global.stun.twilio.com:3478'] }]

/** Gossip options shared by agents and the relay, so both enforce the same message limits. */
export function gossipOptions (): Parameters<typeof gossipsub>[0] {
  return {
    // An agent alone on a topic still publishes (its announce must go out the moment a peer arrives).
    allowPublishToZeroTopicPeers: true,
    emitSelf: false,
    // The largest gossip any topic allows (ledger heads); each topic's own limit is checked per envelope.
    maxInboundDataLength: 64 * 1024 + 1024,
    // Frequent heartbeats keep a small mesh converging within a second or two.
    heartbeatInterval: 700,
    runOnLimitedConnection: true,
    // Every relayed peer appears at the relay's IP, and many agents share one home NAT: the
    // default penalty for more than 10 peers per IP graylisted newcomers (they got no gossip at
    // all once a mesh had about 14 agents). Abuse is met by signatures and per-sender rates.
    scoreParams: { IPColocationFactorWeight: 0 }
  }
}

/**
 * How agents and the relay tell a live link from a dead one. libp2p's connection monitor pings
 * every link every 10 s and aborts it when a ping fails; by default after 5 s, which a node whose
 * event loop is busy for a few seconds misses: a Node host's synchronous forward over a long
 * prompt, a tab in the background, a mesh of agents in one process on two cores. Its links, the
 * relay's included (and with it every relayed link) were torn down while healthy: over a hundred
 * per minute with sixteen agents in one process. The monitor's pings also share the ping
 * protocol with the agents' RTT pings, which it allowed one at a time per link: when both met, the
 * monitor took the refused stream for a dead link and aborted it.
 */
export const LIVENESS = {
  connectionMonitor: { pingTimeout: { minTimeout: 20_000 } }
}

/** Room for the monitor's pings, which pile up while the other end is stalled, beside the agents' own. */
export const pingService = (): ReturnType<typeof ping> => ping({ maxOutboundStreams: 8, maxInboundStreams: 8 })

/**
 * One libp2p node for an agent, browser or Node: the libp2p packages pick their platform
 * builds themselves (native WebSocket/RTCPeerConnection in browsers, ws/node-datachannel in Node);
 * Node agents can also dial TCP, and listen on it when given addresses (transports.ts).
 */
export async function createAgentNode (opts: AgentNodeOptions): Promise<AgentNode> {
  return await createLibp2p({
    privateKey: opts.privateKey,
    addresses: { listen: ['/p2p-circuit', '/webrtc', ...(opts.listen ?? [])] },
    transports: [
      webSockets(),
      ...directTransports(),
      webRTC({ rtcConfiguration: { iceServers: opts.iceServers ?? DEFAULT_ICE_SERVERS } }),
      circuitRelayTransport({ reservationCompletionTimeout: 10_000 })
    ],
    connectionEncrypters: [connectionEncrypter()],
    streamMuxers: [streamMuxer()],
    // The default gater refuses ws:// and loopback, which is exactly what a local relay is.
    connectionGater: { denyDialMultiaddr: () => false },
    // gossipsub opens outbound streams one peer at a time; a vanished peer must not hold the queue long.
    connectionManager: { maxConnections: 200, outboundStreamProtocolNegotiationTimeout: 3000, inboundStreamProtocolNegotiationTimeout: 3000 },
    ...LIVENESS,
    services: {
      identify: identify(),
      ping: pingService(),
      pubsub: gossipsub(gossipOptions())
    }
  }) as AgentNode
}

import { createServer, type IncomingMessage, type Server } from 'node:http'
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import { existsSync } from 'node:fs'
import { createLibp2p, type Libp2p } from 'libp2p'
import { webSockets } from '@libp2p/websockets'
import { identify } from '@libp2p/identify'
import { gossipsub, TopicValidatorResult } from '@libp2p/gossipsub'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { gossipOptions, LIVENESS, pingService } from '../../src/mesh/node.ts'
import { Inbox } from '../../src/mesh/inbox.ts'
import { TOPICS, TOPIC_TYPES } from '../../src/mesh/topics.ts'
import { PROTOCOL_VERSION } from '../../src/protocol/version.ts'
import type { RejectReason } from '../../src/protocol/envelope.ts'
import { loadRelayKey } from './relay-key.ts'
import { LIMITS } from '../../src/protocol/limits.ts'
import { MAX_GOSSIP_BYTES } from '../../src/ledger/sync.ts'
// The relay checks every topic's messages as agents do, so it must know every message type.
import '../../src/swarm/messages.ts'
import '../../src/peer/services/ledger-service.ts'
import { serveFile } from './static.ts'
import { modelManifests } from './model-manifests.ts'
import { streamMuxer } from '../../src/mesh/muxer.ts'
import { connectionEncrypter } from '../../src/mesh/encrypter.ts'
import { GossipRepair, GOSSIP_REPAIR_EVERY_MS } from '../../src/mesh/gossip-repair.ts'

export interface RelayOptions {
  host?: string
  port?: number
  /** Where the relay keeps its key, so a restart keeps its peer id. */
  dataDir?: string
  /** The built app (vite build output); not served when absent. */
  appDir?: string
  /** Model files served under /models/ with range requests. */
  modelsDir?: string
  maxReservations?: number
}

export interface RelayHandle {
  url: string
  peerId: string
  multiaddrs: string[]
  node: Libp2p
  inbox: Inbox
  stop: () => Promise<void>
}

/** Verdicts for gossip that fails our checks: reject (and penalise the peer) or just ignore. */
const IGNORED: RejectReason[] = ['replay', 'rate-limited', 'stale']

/**
 * The relay: a libp2p node (WebSockets, circuit relay v2, identify, ping, gossipsub) and an
 * HTTP server for the app, on ONE port: HTTP requests are answered here and WebSocket upgrades
 * are handed to libp2p's listener on a private loopback port.
 */
export async function startRelay (opts: RelayOptions = {}): Promise<RelayHandle> {
  const host = opts.host ?? '127.0.0.1'
  const appDir = opts.appDir != null ? resolve(opts.appDir) : undefined
  const modelsDir = opts.modelsDir != null ? resolve(opts.modelsDir) : undefined
  const manifests = modelsDir != null ? modelManifests(modelsDir) : undefined
  const privateKey = await loadRelayKey(resolve(opts.dataDir ?? '.data/relay'))

  const http = createServer()
  await new Promise<void>((res, rej) => {
    http.once('error', rej)
    http.listen(opts.port ?? 0, host, () => { http.off('error', rej); res() })
  })
  const port = (http.address() as AddressInfo).port
  const publicAddr = `/ip4/${host}/tcp/${port}/ws`

  // libp2p listens on a private loopback port; getMultiaddrs() shows only the announced public one.
  const internalPort = await freePort()
  const inbox = new Inbox()
  const node = await createLibp2p({
    privateKey,
    addresses: { listen: [`/ip4/127.0.0.1/tcp/${internalPort}/ws`], announce: [publicAddr] },
    transports: [webSockets()],
    connectionEncrypters: [connectionEncrypter()],
    streamMuxers: [streamMuxer()],
    // gossipsub opens its outbound streams one peer at a time: a peer that vanished without closing
    // holds the queue for the whole negotiation timeout, so keep that short.
    connectionManager: { maxConnections: 1024, inboundConnectionThreshold: 20, outboundStreamProtocolNegotiationTimeout: 3000, inboundStreamProtocolNegotiationTimeout: 3000 },
    ...LIVENESS,
    services: {
      identify: identify(),
      ping: pingService(),
      relay: circuitRelayServer({
        reservations: {
          maxReservations: opts.maxReservations ?? 512,
          // Relayed links carry signalling, handshakes and small messages; big transfers go direct.
          defaultDurationLimit: 10 * 60_000,
          defaultDataLimit: BigInt(4 * 1024 * 1024)
        }
      }),
      pubsub: gossipsub({ ...gossipOptions(), emitSelf: false })
    }
  })
  const pubsub = node.services.pubsub as any
  for (const topic of Object.values(TOPICS)) {
    // The relay forwards only what it subscribes to, and drops what fails the same checks agents apply.
    pubsub.subscribe(topic)
    const maxBytes = topic === TOPICS.ledger ? MAX_GOSSIP_BYTES : LIMITS.maxEnvelopeBytes
    pubsub.topicValidators.set(topic, async (from: any, msg: any) => {
      const d = await inbox.admit(msg.data, { transportFrom: msg.from?.toString() ?? from.toString(), senderMustMatch: msg.from != null, maxBytes, types: TOPIC_TYPES[topic] })
      if (d.ok) return TopicValidatorResult.Accept
      return IGNORED.includes(d.reason) ? TopicValidatorResult.Ignore : TopicValidatorResult.Reject
    })
  }
  // Every agent that meets others through the relay depends on its streams to them.
  const repair = new GossipRepair(node)
  const repairTimer = setInterval(() => { repair.check() }, GOSSIP_REPAIR_EVERY_MS)
  const peerId = node.peerId.toString()
  const multiaddrs = [`${publicAddr}/p2p/${peerId}`]
  const url = `http://${host}:${port}/`

  http.on('upgrade', (req: IncomingMessage, socket, head) => {
    // Hand the raw upgrade to libp2p's WebSocket listener, byte for byte.
    const upstream = connect(internalPort, '127.0.0.1', () => {
      upstream.write(`${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`)
      for (let i = 0; i < req.rawHeaders.length; i += 2) upstream.write(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`)
      upstream.write('\r\n')
      if (head.length > 0) upstream.write(head)
      socket.pipe(upstream).pipe(socket)
    })
    const drop = (): void => { socket.destroy(); upstream.destroy() }
    upstream.on('error', drop)
    socket.on('error', drop)
    socket.on('close', () => upstream.destroy())
    upstream.on('close', () => socket.destroy())
  })

  http.on('request', (req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', url).pathname
      if (path === '/api/relay') {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
        res.end(JSON.stringify({
          protocol: PROTOCOL_VERSION,
          peerId,
          multiaddrs,
          peers: node.getPeers().length,
          rejected: inbox.counts,
          gossipRepairs: { attempts: repair.attempts, repaired: repair.repaired }
        }))
        return
      }
      if (modelsDir != null && path.startsWith('/models/')) {
        const sub = path.slice('/models'.length)
        if (await serveFile(req, res, modelsDir, sub)) return
        if (manifests != null && await manifests(req, res, sub)) return
      } else if (appDir != null && existsSync(appDir)) {
        if (await serveFile(req, res, appDir, path, true)) return
      } else if (path === '/') {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('The app is not built: run `npm run build` (or `npm start`, which builds it).')
        return
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found')
    })().catch(err => {
      if (!res.headersSent) res.writeHead(500).end(String(err?.message ?? err))
    })
  })

  return {
    url,
    peerId,
    multiaddrs,
    node,
    inbox,
    async stop () {
      clearInterval(repairTimer)
      await node.stop()
      http.closeAllConnections()
      await new Promise<void>(res => (http as Server).close(() => res()))
    }
  }
}

async function freePort (): Promise<number> {
  const probe = createNetServer()
  await new Promise<void>(resolve => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as AddressInfo
  await new Promise<void>(resolve => probe.close(() => resolve()))
  return port
}

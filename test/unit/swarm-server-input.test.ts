import { describe, expect, it } from 'vitest'
import { streamPair } from '@libp2p/utils'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Connection, Stream } from '@libp2p/interface'
import { ShardServer, type HostedRange } from '../../src/swarm/server.ts'
import { HopSession } from '../../src/swarm/hop.ts'
import { sessionFrames } from '../../src/swarm/session-wire.ts'
import { encodeTensor } from '../../src/swarm/tensor-codec.ts'
import type { HostMeter, HostPayments } from '../../src/swarm/payments.ts'
import { FAKE_MODEL, fakeRange } from '../helpers/fake-shard.ts'

const DIM = 4
const CLIENT = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
const OPEN = { type: 'open', model: FAKE_MODEL, start: 0, end: 1, maxLength: 16, dtype: 'f32' }
const tensor = (tokens: number, value = 1): Uint8Array => encodeTensor(new Float32Array(tokens * DIM).fill(value), 'f32', DIM)
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** A client's raw end of one session stream served by `server`. */
async function rawSession (server: ShardServer) {
  const [ours, theirs] = await streamPair()
  const served = server.handle(theirs, { remotePeer: CLIENT })
  return { stream: ours, frames: sessionFrames(ours), served }
}

/** A raw push stream into `server`, as the previous hop of a chain would open it. */
async function rawPush (server: ShardServer) {
  const [ours, theirs] = await streamPair()
  const served = server.handlePush(theirs)
  return { stream: ours, frames: sessionFrames(ours), served }
}

async function openHop (server: ShardServer, timeoutMs = 3000): Promise<HopSession> {
  const conn = { newStream: async () => { const [ours, theirs] = await streamPair(); void server.handle(theirs, { remotePeer: CLIENT }); return ours } } as unknown as Connection
  return await HopSession.open(conn, { peer: 'host', start: 0, end: 1 } as any, FAKE_MODEL, 16, { dtype: 'f32', dim: DIM, timeoutMs })
}

/**
 * A range that records what its caches went through: a forward whose first input value is
 * `HOLD` waits for `release` (holding the server's one forward at a time), one with `FAIL` throws.
 */
const HOLD = 7
const FAIL = 13
function recordingRange () {
  let release!: () => void
  const held = new Promise<void>(resolve => { release = resolve })
  const caches: Array<{ position: number, disposed: boolean }> = []
  const forwardsOnDisposed: number[] = []
  /** The cache of every forward begun, in order. */
  const started: number[] = []
  const base = fakeRange(DIM, 2)
  const hosted: HostedRange = {
    ...base,
    range: {
      ...base.range,
      newCache: () => {
        const c = { position: 0, disposed: false, dispose () { c.disposed = true } }
        caches.push(c)
        return c as any
      },
      forward: async (h: Float32Array, n: number, cache: any) => {
        started.push(caches.indexOf(cache))
        if (cache.disposed === true) forwardsOnDisposed.push(caches.indexOf(cache))
        if (h[0] === HOLD) await held
        if (h[0] === FAIL) throw new Error('engine failure')
        cache.position += n
        return h.slice()
      }
    } as any
  }
  return { hosted, caches, forwardsOnDisposed, started, release }
}

describe('a host faced with bad input', () => {
  const cases: Array<{ what: string, send: (f: ReturnType<typeof sessionFrames>) => Promise<void>, error: string, opened?: boolean }> = [
    { what: 'a step before the open', opened: false, send: async f => { await f.writeWithBytes({ type: 'step', position: 0, tokens: 1 }, tensor(1)) }, error: 'bad-request' },
    { what: 'a second open on the same stream', send: async f => { await f.write(OPEN) }, error: 'bad-request' },
    { what: 'tokens = 0', send: async f => { await f.writeWithBytes({ type: 'step', position: 0, tokens: 0 }, new Uint8Array(0)) }, error: 'bad-request' },
    { what: 'a huge token count', send: async f => { await f.writeWithBytes({ type: 'step', position: 0, tokens: 1e12 }, tensor(1)) }, error: 'context-full' },
    { what: 'a position the session does not hold', send: async f => { await f.writeWithBytes({ type: 'step', position: 3, tokens: 1 }, tensor(1)) }, error: 'position' },
    { what: 'a tensor frame of the wrong length', send: async f => { await f.writeWithBytes({ type: 'step', position: 0, tokens: 2 }, tensor(1)) }, error: 'bad-request' },
    { what: 'an unknown dtype', send: async f => { await f.writeWithBytes({ type: 'step', position: 0, tokens: 1, dtype: 'f64' }, tensor(1)) }, error: 'bad-request' },
    { what: 'non-finite values', send: async f => { await f.writeWithBytes({ type: 'step', position: 0, tokens: 1 }, tensor(1, Number.NaN)) }, error: 'bad-request' }
  ]
  for (const c of cases) {
    it(`${c.what}: a clear error, and the session and its cache reservation are released`, async () => {
      const server = new ShardServer(fakeRange(DIM, 2), { cacheBudgetBytes: 1 << 20 }, 1)
      const capacity = server.stats().capacityTokens
      const { frames, served } = await rawSession(server)
      if (c.opened !== false) {
        await frames.write(OPEN)
        expect((await frames.readJson()).ok).toBe(true)
        expect(server.stats().freeCacheTokens).toBe(capacity - OPEN.maxLength)
      }
      await c.send(frames)
      expect(await frames.readJson()).toMatchObject({ ok: false, error: c.error })
      await served
      expect(server.stats()).toMatchObject({ sessions: 0, freeCacheTokens: capacity })
    })
  }

  it('a frame that is not JSON, or longer than any frame may be, is a bad request, not a failure of the host', async () => {
    const server = new ShardServer(fakeRange(DIM, 2), { cacheBudgetBytes: 1 << 20 }, 1)
    const garbage = await rawSession(server)
    await garbage.frames.write(OPEN)
    await garbage.frames.readJson()
    await garbage.frames.writeBytes(new TextEncoder().encode('{"type":"st'))
    expect(await garbage.frames.readJson()).toMatchObject({ ok: false, error: 'bad-request' })
    await garbage.served
    // Only the length prefix of a frame over the limit: the host must refuse it before its bytes.
    const oversized = await rawSession(server)
    oversized.stream.send(Uint8Array.from([0x80, 0x80, 0x80, 0x40]))
    expect(await oversized.frames.readJson()).toMatchObject({ ok: false, error: 'bad-request' })
    await oversized.served
    expect(server.stats().sessions).toBe(0)
  })

  it('a forward that throws on a client\'s step ends that session with an error, and other sessions go on', async () => {
    const r = recordingRange()
    const server = new ShardServer(r.hosted, { cacheBudgetBytes: 1 << 20 }, 1)
    const failing = await openHop(server)
    const other = await openHop(server)
    await expect(failing.step(new Float32Array(DIM).fill(FAIL), 1)).rejects.toMatchObject({ code: 'internal' })
    await expect.poll(() => server.stats().sessions).toBe(1)
    expect(Array.from(await other.step(new Float32Array(DIM).fill(2), 1))).toEqual(Array(DIM).fill(2))
  })
})

describe('a host faced with bad pushes', () => {
  it('a pushed step whose tensor does not decode is dropped and counted, and the client\'s session goes on', async () => {
    const server = new ShardServer(fakeRange(DIM, 2, x => 2 * x), { cacheBudgetBytes: 1 << 20 }, 1)
    const hop = await openHop(server)
    const push = await rawPush(server)
    await push.frames.write({ push: hop.pushId })
    // Three bytes for a token of four f32 values, then a dtype nobody speaks.
    await push.frames.writeWithBytes({ position: 0, tokens: 1, dtype: 'f32' }, new Uint8Array(3))
    await push.frames.writeWithBytes({ position: 0, tokens: 1, dtype: 'f64' }, tensor(1))
    await expect.poll(() => server.stats().pushesDropped).toBe(2)
    // The client was not blamed for bytes it never sent: its own step at 0 is served.
    expect(Array.from(await hop.step(new Float32Array(DIM).fill(1), 1))).toEqual(Array(DIM).fill(2))
    expect(server.stats().sessions).toBe(1)
  })

  it('a push stream that sends something other than JSON is dropped and counted', async () => {
    const server = new ShardServer(fakeRange(DIM, 2), { cacheBudgetBytes: 1 << 20 }, 1)
    const hop = await openHop(server)
    const badHello = await rawPush(server)
    await badHello.frames.writeBytes(new TextEncoder().encode('not json'))
    await badHello.served
    expect(server.stats().pushesDropped).toBe(1)
    const badStep = await rawPush(server)
    await badStep.frames.write({ push: hop.pushId })
    await badStep.frames.writeBytes(new TextEncoder().encode('{"position":'))
    await badStep.served
    expect(server.stats().pushesDropped).toBe(2)
    expect(server.stats().sessions).toBe(1)
  })

  it('a forward that throws on a pushed step tells the client at once and ends the session', async () => {
    const r = recordingRange()
    const server = new ShardServer(r.hosted, { cacheBudgetBytes: 1 << 20 }, 1)
    const hop = await openHop(server, 2000)
    const push = await rawPush(server)
    await push.frames.write({ push: hop.pushId })
    await push.frames.writeWithBytes({ position: 0, tokens: 1, dtype: 'f32' }, tensor(1, FAIL))
    await expect(hop.receive(1)).rejects.toMatchObject({ code: 'internal' })
    await expect.poll(() => server.stats().sessions).toBe(0)
    expect(r.caches[0].disposed).toBe(true)
  })

  it('a pushed step refused for payment ends the session at once, freeing its cache reservation', async () => {
    const meter: HostMeter = { accept: async () => true, signedUnits: 0, wantsSettlement: true, mustPause: true, close: () => {} }
    const payments: HostPayments = { meter: () => meter }
    const server = new ShardServer(fakeRange(DIM, 2), { cacheBudgetBytes: 1 << 20, payments }, 1)
    const capacity = server.stats().capacityTokens
    const hop = await openHop(server)
    const push = await rawPush(server)
    await push.frames.write({ push: hop.pushId })
    await push.frames.writeWithBytes({ position: 0, tokens: 1, dtype: 'f32' }, tensor(1))
    await expect(hop.receive(1)).rejects.toMatchObject({ code: 'payment-required' })
    // The client has been told; nothing it does (or fails to do) may keep the reservation.
    await expect.poll(() => server.stats()).toMatchObject({ sessions: 0, freeCacheTokens: capacity })
  })

  it('no forward runs on the cache of a session whose client went away while its pushed step waited its turn', async () => {
    const r = recordingRange()
    const server = new ShardServer(r.hosted, { cacheBudgetBytes: 1 << 20 }, 1)
    // One session's long step holds the host's forward...
    const busy = await openHop(server)
    const busyStep = busy.step(new Float32Array(DIM).fill(HOLD), 1)
    // ...while a step pushed into another waits behind it, and that session's client leaves.
    const leaving = await rawSession(server)
    await leaving.frames.write({ ...OPEN, maxLength: 8 })
    const { push: pushId } = await leaving.frames.readJson()
    const push = await rawPush(server)
    await push.frames.write({ push: pushId })
    await push.frames.writeWithBytes({ position: 0, tokens: 1, dtype: 'f32' }, tensor(1))
    await sleep(50)
    await leaving.frames.write({ type: 'close' })
    await leaving.served
    expect(server.stats().sessions).toBe(1)
    r.release()
    await busyStep
    await push.served
    await sleep(20)
    expect(r.forwardsOnDisposed).toEqual([])
    // Its cache is still freed, once nothing uses it.
    await expect.poll(() => r.caches[1].disposed).toBe(true)
  })

  it('a session\'s cache is not freed under a forward still running on it', async () => {
    const r = recordingRange()
    const server = new ShardServer(r.hosted, { cacheBudgetBytes: 1 << 20 }, 1)
    const leaving = await rawSession(server)
    await leaving.frames.write(OPEN)
    const { push: pushId } = await leaving.frames.readJson()
    const push = await rawPush(server)
    await push.frames.write({ push: pushId })
    await push.frames.writeWithBytes({ position: 0, tokens: 1, dtype: 'f32' }, tensor(1, HOLD))
    await expect.poll(() => r.started).toEqual([0])
    leaving.stream.abort(new Error('client vanished'))
    await leaving.served
    // The session and its reservation are gone at once; the memory only once the engine is done with it.
    expect(server.stats().sessions).toBe(0)
    expect(r.caches[0].disposed).toBe(false)
    r.release()
    await expect.poll(() => r.caches[0].disposed).toBe(true)
    expect(r.caches[0].position).toBe(1)
  })
})

describe('a host reaping idle sessions', () => {
  it('ends the reaped session\'s stream, rather than leave it open on a session that is gone', async () => {
    const server = new ShardServer(fakeRange(DIM, 2), { cacheBudgetBytes: 1 << 20, idleMs: 60_000 }, 1)
    const { frames, served } = await rawSession(server)
    await frames.write(OPEN)
    await frames.readJson()
    expect(server.reapIdle(Date.now() + 120_000)).toBe(1)
    expect(server.stats().sessions).toBe(0)
    const wait = AbortSignal.timeout(2000)
    await expect(frames.readJson(wait)).rejects.toThrow()
    expect(wait.aborted).toBe(false)
    await served
  })

  it('a push stream to the next hop that opens after its session was reaped is closed, not kept', async () => {
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    const opened: Stream[] = []
    const server = new ShardServer(fakeRange(DIM, 2), {
      cacheBudgetBytes: 1 << 20,
      idleMs: 60_000,
      link: async (_peer, use) => {
        await held
        return await use({
          newStream: async () => {
            const [ours, theirs] = await streamPair()
            // The next hop reads the hello and then just waits, as a live session would.
            void sessionFrames(theirs).readJson().catch(() => {})
            opened.push(ours)
            return ours
          }
        } as unknown as Connection)
      }
    }, 1)
    const { frames } = await rawSession(server)
    await frames.write(OPEN)
    await frames.readJson()
    await frames.write({ type: 'next', peer: 'next-host', push: 'a'.repeat(32) })
    await sleep(20)
    expect(server.reapIdle(Date.now() + 120_000)).toBe(1)
    release()
    await expect.poll(() => opened.length).toBe(1)
    await expect.poll(() => opened[0].status).not.toBe('open')
  })
})

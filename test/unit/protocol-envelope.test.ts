import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { fromString } from 'uint8arrays'
import { decodeEnvelope, encodeEnvelope, signEnvelope, type Signer } from '../../src/protocol/envelope.ts'
import { canonicalJson } from '../../src/protocol/canonical.ts'
import { LIMITS } from '../../src/protocol/limits.ts'
import { Inbox } from '../../src/mesh/inbox.ts'
import { TOPICS, TOPIC_TYPES } from '../../src/mesh/topics.ts'
import type { AnnounceBody } from '../../src/protocol/messages.ts'

async function signer (): Promise<Signer> {
  const privateKey = await generateKeyPair('Ed25519')
  return { peerId: peerIdFromPrivateKey(privateKey).toString(), privateKey }
}

const announce: AnnounceBody = {
  name: 'Alice', caps: { platform: 'node', webgpu: { available: false }, cores: 2 }, wants: ['gpu'], offers: ['cpu'], hosts: [], links: [], ttl: 30
}

const bytes = (value: unknown): Uint8Array => fromString(JSON.stringify(value), 'utf8')

describe('canonical JSON', () => {
  it('sorts keys at every depth and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { y: 1, x: 2 }], c: undefined } })).toBe('{"a":{"d":[2,{"x":2,"y":1}]},"b":1}')
  })
  it('refuses numbers JSON cannot carry', () => {
    expect(() => canonicalJson({ a: Number.NaN })).toThrow()
  })
})

describe('envelope', () => {
  it('round-trips a signed announce', async () => {
    const s = await signer()
    const env = await signEnvelope(s, 'agent.announce', announce)
    const d = await decodeEnvelope(encodeEnvelope(env))
    expect(d.ok).toBe(true)
    if (d.ok) expect(d.env.body).toEqual(announce)
  })

  it('keeps verifying when a receiver re-serialises the fields in another order', async () => {
    const s = await signer()
    const env = await signEnvelope(s, 'chat.message', { text: 'hi' })
    const reordered = { sig: env.sig, body: env.body, id: env.id, ts: env.ts, from: env.from, type: env.type, v: env.v }
    expect((await decodeEnvelope(bytes(reordered))).ok).toBe(true)
  })

  const cases: Array<[string, (env: any, s: Signer, other: Signer) => unknown, string]> = [
    ['altered body', env => ({ ...env, body: { ...env.body, name: 'Mallory' } }), 'bad-signature'],
    ['someone else\'s id in from', (env, _s, other) => ({ ...env, from: other.peerId }), 'bad-signature'],
    ['no signature', env => ({ ...env, sig: undefined }), 'malformed'],
    ['garbage signature', env => ({ ...env, sig: 'AAAA' }), 'bad-signature'],
    ['from is not a peer id', env => ({ ...env, from: 'not-a-peer-id' }), 'bad-signature'],
    ['another major version', env => ({ ...env, v: 'clawnet/2.0' }), 'wrong-version'],
    ['no version', env => ({ ...env, v: undefined }), 'malformed'],
    ['unknown type', env => ({ ...env, type: 'agent.dance' }), 'unknown-type'],
    ['invalid body', env => ({ ...env, body: { ...env.body, ttl: -1 } }), 'invalid-body'],
    ['array instead of object', () => [], 'malformed'],
    ['timestamp an hour old', env => ({ ...env, ts: env.ts - 3_600_000 }), 'stale']
  ]
  for (const [name, mutate, reason] of cases) {
    it(`rejects ${name} as ${reason}`, async () => {
      const s = await signer()
      const other = await signer()
      const env = await signEnvelope(s, 'agent.announce', announce)
      const d = await decodeEnvelope(bytes(mutate(env, s, other)))
      expect(d.ok).toBe(false)
      if (!d.ok) expect(d.reason).toBe(reason)
    })
  }

  it('rejects non-JSON and oversized input before parsing it', async () => {
    expect(await decodeEnvelope(fromString('{not json', 'utf8'))).toMatchObject({ ok: false, reason: 'malformed' })
    const big = new Uint8Array(LIMITS.maxEnvelopeBytes + 1).fill(32)
    expect(await decodeEnvelope(big)).toMatchObject({ ok: false, reason: 'oversized' })
  })

  it('accepts unknown fields of a compatible minor version but does not keep them', async () => {
    const s = await signer()
    const env = await signEnvelope(s, 'chat.message', { text: 'hi' })
    const d = await decodeEnvelope(bytes({ ...env, v: 'clawnet/1.7', extra: 'ignored' }))
    // The minor version is part of what was signed, so changing it breaks the signature...
    expect(d).toMatchObject({ ok: false, reason: 'bad-signature' })
    // ...while an unsigned extra field alone is simply dropped.
    const d2 = await decodeEnvelope(bytes({ ...env, extra: 'ignored' }))
    expect(d2.ok).toBe(true)
    if (d2.ok) expect((d2.env as any).extra).toBeUndefined()
  })
})

describe('inbox', () => {
  it('counts a replayed envelope and accepts it only once', async () => {
    const s = await signer()
    const inbox = new Inbox()
    const b = encodeEnvelope(await signEnvelope(s, 'chat.message', { text: 'once' }))
    expect(await inbox.accept(b)).toBeDefined()
    expect(await inbox.accept(b)).toBeUndefined()
    expect(inbox.counts.replay).toBe(1)
    expect(inbox.accepted).toBe(1)
  })

  it('rate-limits a flooding sender and counts it', async () => {
    const s = await signer()
    const inbox = new Inbox()
    const now = Date.now()
    let ok = 0
    for (let i = 0; i < LIMITS.rateBurst + 10; i++) {
      if (await inbox.accept(encodeEnvelope(await signEnvelope(s, 'chat.message', { text: `m${i}` }, { ts: now })), { now })) ok++
    }
    expect(ok).toBe(LIMITS.rateBurst)
    expect(inbox.counts['rate-limited']).toBe(10)
    // The bucket refills with time.
    const later = now + 2000
    expect(await inbox.accept(encodeEnvelope(await signEnvelope(s, 'chat.message', { text: 'later' }, { ts: later })), { now: later })).toBeDefined()
  })

  it('refuses an envelope published by someone other than its signer', async () => {
    const s = await signer()
    const other = await signer()
    const inbox = new Inbox()
    const b = encodeEnvelope(await signEnvelope(s, 'chat.message', { text: 'relayed by a stranger' }))
    expect(await inbox.accept(b, { transportFrom: other.peerId, senderMustMatch: true })).toBeUndefined()
    expect(inbox.counts['sender-mismatch']).toBe(1)
  })

  it('refuses a type its topic does not carry, and does not burn the envelope\'s id on it', async () => {
    const s = await signer()
    const inbox = new Inbox()
    const chat = encodeEnvelope(await signEnvelope(s, 'chat.message', { text: 'on the wrong topic' }))
    expect(await inbox.accept(chat, { types: TOPIC_TYPES[TOPICS.announce] })).toBeUndefined()
    expect(inbox.counts['unknown-type']).toBe(1)
    // The same envelope on its own topic is no replay.
    expect(await inbox.accept(chat, { types: TOPIC_TYPES[TOPICS.tavern] })).toBeDefined()
    expect(inbox.accepted).toBe(1)
  })

  it('counts every reason separately and never throws on garbage', async () => {
    const inbox = new Inbox()
    for (const junk of ['', 'null', '42', '{"v":"clawnet/1.0"}', '\u0000\u0001']) {
      expect(await inbox.accept(fromString(junk, 'utf8'))).toBeUndefined()
    }
    expect(inbox.counts.malformed).toBe(5)
    expect(inbox.accepted).toBe(0)
  })
})

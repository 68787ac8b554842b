import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startRelay, MODELS_DIR } from '../helpers/relay.ts'
import { startPeerProcess, waitFor, waitForCoverage, type PeerProcess } from '../helpers/peer-process.ts'
import { CREDIT } from '../../src/ledger/block.ts'
import { DEFAULT_POLICY } from '../../src/ledger/policy.ts'

const MODEL_FILE = join(MODELS_DIR, 'stories260K/stories260K.gguf')
const reference = JSON.parse(readFileSync(join(MODELS_DIR, 'stories260K/reference.json'), 'utf8'))
const [once] = reference.results

/** The API speaks credits; the ledger micro-credits, which is what the rules are exact in. */
const micro = (credits: number): number => Math.round(credits * CREDIT)

/**
 * Pay-per-work on real agents: two `clawnet peer` hosts split stories260K, a third peer generates
 * through them, and the ledger moves exactly what the hosts served from the client to them.
 */
describe('inference over the mesh is paid through the ledger', () => {
  let relay: Awaited<ReturnType<typeof startRelay>>
  let head: PeerProcess
  let tail: PeerProcess
  let client: PeerProcess
  const ids: Record<string, string> = {}

  const balanceIn = async (viewer: PeerProcess, account: string): Promise<number | undefined> => {
    const r = await fetch(`${viewer.api}/v1/ledger/accounts/${account}`)
    return r.ok ? micro((await r.json()).balance) : undefined
  }

  beforeAll(async () => {
    relay = await startRelay({ modelsDir: MODELS_DIR })
    head = await startPeerProcess(relay.url, 'head-host', ['--model', MODEL_FILE, '--layers', '0-1'])
    tail = await startPeerProcess(relay.url, 'tail-host', ['--model', MODEL_FILE, '--layers', '2-4'])
    client = await startPeerProcess(relay.url, 'client')
    for (const [name, p] of Object.entries({ head, tail, client })) ids[name] = (await p.get('/v1/mesh/self')).id
    await waitForCoverage(client)
  })

  afterAll(async () => {
    await client?.stop()
    await tail?.stop()
    await head?.stop()
    await relay?.stop()
  })

  it('each host earns tokens × blocks × price, the client pays the sum, and every agent agrees', async () => {
    const peers = { head, tail, client }
    // Every agent must know every chain before the generation, so "before" is one number everywhere.
    const before = await waitFor('every agent to hold every chain', async () => {
      const seen: Record<string, number> = {}
      for (const account of Object.keys(ids)) {
        const views = await Promise.all(Object.values(peers).map(async p => await balanceIn(p, ids[account])))
        if (views.some(v => v == null || v !== views[0])) return undefined
        seen[account] = views[0]!
      }
      return seen
    }, 30_000, 300)

    const res = await client.post('/v1/completions', { model: 'stories260K.gguf', prompt: once.prompt, max_tokens: 64, temperature: 0 })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    // Paying changes nothing about what is computed.
    expect(res.body.clawnet.tokens).toEqual(once.generated_tokens)
    expect(res.body.choices[0].text).toBe(once.text)
    const hops = res.body.clawnet.routes[0].hops.map((h: any) => [h.peer, h.start, h.end])
    expect(hops).toEqual([[ids.head, 0, 1], [ids.tail, 2, 4]])
    expect(res.body.clawnet.failovers).toBe(0)

    // Every token but the last sampled one went through both hosts.
    const tokens = once.prompt_tokens_with_bos.length + once.generated_tokens.length - 1
    const price = DEFAULT_POLICY.work.pricePerUnit
    const fee = DEFAULT_POLICY.fees.enabled ? DEFAULT_POLICY.fees.transaction : 0
    const earned = { head: tokens * 2 * price, tail: tokens * 3 * price }
    const payments = res.body.clawnet.payments
    expect(payments.map((p: any) => [p.server, p.units, micro(p.amount), micro(p.fee), p.acknowledged]).sort()).toEqual([
      [ids.head, tokens * 2, earned.head, fee, true],
      [ids.tail, tokens * 3, earned.tail, fee, true]
    ].sort())
    expect(micro(res.body.clawnet.credits_paid)).toBe(earned.head + earned.tail + 2 * fee)

    const expected = { head: before.head + earned.head, tail: before.tail + earned.tail, client: before.client - earned.head - earned.tail - 2 * fee }
    for (const [viewer, p] of Object.entries(peers)) {
      await waitFor(`${viewer} to see every balance after the payments`, async () => {
        for (const account of Object.keys(ids)) if (await balanceIn(p, ids[account]) !== expected[account as keyof typeof expected]) return undefined
        return true
      }, 20_000, 300)
    }

    // What the hosts' dashboards and the API show.
    for (const [name, p] of Object.entries({ head, tail })) {
      const credits = (await p.get('/v1/swarm')).credits
      expect(micro(credits.earned)).toBe(earned[name as 'head' | 'tail'])
      expect(micro(credits.byPeer[ids.client].earned)).toBe(earned[name as 'head' | 'tail'])
      expect(micro(credits.spent)).toBe(0)
    }
    expect(micro((await client.get('/v1/swarm')).credits.spent)).toBe(earned.head + earned.tail + 2 * fee)
  })
})

import { afterEach, describe, expect, it } from 'vitest'
import OpenAI from 'openai'
import { swarmRoutes } from '../../relay/lib/swarm-api.ts'
import { serveJson } from '../../relay/lib/http-json.ts'
import type { AgentHandle } from '../../src/peer/handle.ts'
import { streamPair } from '@libp2p/utils'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Connection } from '@libp2p/interface'
import { MeshClient, type LocalEnds } from '../../src/swarm/client.ts'
import { ShardServer } from '../../src/swarm/server.ts'
import { BanList } from '../../src/swarm/routing.ts'
import { Standing } from '../../src/swarm/verify.ts'
import { FAKE_MODEL, fakeRange } from '../helpers/fake-shard.ts'

// What existing OpenAI tooling (the openai client, bots, curl scripts) meets at the edges of the
// API: errors, parameters it cannot honour, stop sequences, usage, and clients that hang up.

const EOS = 0
/** Token id → text; the fake model's replies are sequences of these ids. */
const VOCAB = ['', 'Once', ' upon', ' a', ' ti', 'me', ' there', ' was', ' a', ' cat', '.']
const STORY = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
const CONTEXT = 64

interface FakeOptions {
  /** The ids the model decodes, in order (repeated if max_tokens asks for more). */
  reply?: number[]
  delayMs?: number
  fail?: Error
  covered?: boolean
}

interface FakeRun { opts: any, prompt: unknown, produced: number, aborted: boolean }

/** The API served over HTTP on a swarm whose model decodes `reply`, recording every generation. */
async function serve (o: FakeOptions = {}) {
  const runs: FakeRun[] = []
  const chats: unknown[] = []
  const reply = o.reply ?? STORY
  const swarm = {
    view: () => ({ models: [{ model: 'abc123def4567890', name: 'm.gguf', nLayers: 4, missing: o.covered === false ? [[2, 3]] : [], servers: [] }], sessions: [] }),
    decoderFor: async () => ({ push: (id: number) => VOCAB[id], flush: () => '' }),
    chatPrompt: async (_model: string, messages: unknown) => { chats.push(messages); return [1, 2, 3] },
    contextLength: async () => CONTEXT,
    generate: async (_model: string, prompt: string | number[], opts: any) => {
      const run: FakeRun = { opts, prompt, produced: 0, aborted: false }
      runs.push(run)
      if (o.fail != null) throw o.fail
      // The real client opens the chain (reporting its route) before it decodes anything.
      opts.onRoute?.([], 'initial')
      const tokens: number[] = []
      try {
        while (tokens.length < opts.maxTokens) {
          if (o.delayMs != null) await new Promise(resolve => setTimeout(resolve, o.delayMs))
          opts.signal?.throwIfAborted()
          const id = reply[tokens.length % reply.length]
          tokens.push(id)
          run.produced++
          opts.onToken?.(id)
          if ((opts.stopAtEos === true && id === EOS) || opts.shouldStop?.() === true) break
        }
      } catch (err) {
        run.aborted = opts.signal?.aborted === true
        throw err
      }
      const promptTokens = typeof prompt === 'string' ? [...prompt].map(() => 7) : prompt
      return { promptTokens, tokens, text: '', routes: [], failovers: 0, timings: {}, spotChecks: 0, spotChecksSkipped: 0, pushedSteps: 0, wire: { bytesSent: 0, bytesReceived: 0 }, cost: { paid: 0, settlements: [] } }
    }
  }
  const agent = { service: (name: string) => name === 'swarm' ? swarm : undefined } as unknown as AgentHandle
  const server = await serveJson(swarmRoutes(agent), '127.0.0.1', 0)
  servers.push(server)
  // No retries: a test sees each answer once, and a 503 is not re-asked.
  const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'not-needed', maxRetries: 0 })
  const post = async (path: string, body: unknown): Promise<{ status: number, body: any }> => {
    const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) })
    return { status: res.status, body: await res.json() }
  }
  return { url: server.url, openai, runs, chats, post }
}

const servers: Array<{ close: () => Promise<void> }> = []
afterEach(async () => { await Promise.all(servers.splice(0).map(async s => await s.close())) })

const user = (content: string): OpenAI.ChatCompletionMessageParam[] => [{ role: 'user', content }]

describe('OpenAI-compatible API: defaults', () => {
  it('a chat without max_tokens may fill the rest of the context, as OpenAI\'s; each response has its own id', async () => {
    const { openai, runs } = await serve({ reply: [1, 2, 3, EOS] })
    const a = await openai.chat.completions.create({ model: 'm.gguf', messages: user('hi') })
    // The fake chat template makes 3 prompt tokens of any chat.
    expect(runs[0].opts.maxTokens).toBe(CONTEXT - 3)
    expect(a.choices[0].finish_reason).toBe('stop')
    const b = await openai.chat.completions.create({ model: 'm.gguf', messages: user('hi'), max_completion_tokens: 200 })
    expect(runs[1].opts.maxTokens).toBe(200)
    const c = await openai.completions.create({ model: 'm.gguf', prompt: 'hi' })
    expect(runs[2].opts.maxTokens).toBe(16)
    expect(new Set([a.id, b.id, c.id.replace(/^cmpl-/, 'chatcmpl-')]).size).toBe(3)
  })

  it('answers 200, as OpenAI does, not 201', async () => {
    const { post } = await serve()
    expect((await post('/v1/completions', { model: 'm.gguf', prompt: 'hi', max_tokens: 2 })).status).toBe(200)
    expect((await post('/v1/chat/completions', { model: 'm.gguf', messages: user('hi'), max_tokens: 2 })).status).toBe(200)
  })
})

describe('OpenAI-compatible API: errors', () => {
  it('errors come in OpenAI\'s shape, so the openai client shows the message, type, param and code', async () => {
    const { openai } = await serve()
    const unknown = await openai.completions.create({ model: 'llama-405b', prompt: 'hi' }).catch(e => e)
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError)
    expect(unknown.error).toEqual({ message: expect.stringMatching(/unknown model 'llama-405b'.*m\.gguf/), type: 'invalid_request_error', param: 'model', code: 'model_not_found' })
    // Not a JSON-quoted string: the message reads as the server wrote it.
    expect(unknown.message).toBe(`404 ${unknown.error.message}`)

    const bad = await openai.chat.completions.create({ model: 'm.gguf', messages: user('hi'), max_tokens: -1 }).catch(e => e)
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError)
    expect(bad.param).toBe('max_tokens')
    expect(bad.type).toBe('invalid_request_error')
  })

  it('invalid JSON is a 400 in OpenAI\'s shape, and so is a body over the size limit (413)', async () => {
    const { post, runs } = await serve()
    const broken = await post('/v1/chat/completions', '{"model": "m.gguf", "messages": [')
    expect(broken.status).toBe(400)
    expect(broken.body.error).toMatchObject({ message: expect.stringMatching(/not valid JSON/), type: 'invalid_request_error' })
    const huge = await post('/v1/completions', { model: 'm.gguf', prompt: 'x'.repeat(8 << 20) })
    expect(huge.status).toBe(413)
    expect(huge.body.error).toMatchObject({ message: expect.stringMatching(/bytes/), type: 'invalid_request_error' })
    expect(runs).toEqual([])
  })

  it('a model the mesh does not cover is a 503 that names the missing blocks', async () => {
    const { openai } = await serve({ covered: false })
    const err = await openai.completions.create({ model: 'm.gguf', prompt: 'hi' }).catch(e => e)
    expect(err).toBeInstanceOf(OpenAI.InternalServerError)
    expect(err.status).toBe(503)
    expect(err.error).toMatchObject({ message: expect.stringMatching(/no peer serves blocks 2-3/), type: 'server_error' })
  })

  it('a streamed request that fails before its first token gets a real HTTP status, not a 200 with an error event', async () => {
    const { openai } = await serve({ fail: new Error('prompt (600) + max tokens (100) exceeds the model\'s context of 512 tokens') })
    const err = await openai.chat.completions.create({ model: 'm.gguf', messages: user('hi'), max_tokens: 100, stream: true }).catch(e => e)
    expect(err).toBeInstanceOf(OpenAI.BadRequestError)
    expect(err.code).toBe('context_length_exceeded')
    expect(err.message).toMatch(/context of 512/)
  })
})

describe('OpenAI-compatible API: parameters', () => {
  const chat = { model: 'm.gguf', messages: [{ role: 'user', content: 'hi' }] }
  const refused: Array<[string, Record<string, unknown>, string]> = [
    ['max_tokens negative', { max_tokens: -5 }, 'max_tokens'],
    ['max_tokens not an integer', { max_tokens: 1.5 }, 'max_tokens'],
    ['max_tokens a string', { max_tokens: '16' }, 'max_tokens'],
    ['max_completion_tokens zero', { max_completion_tokens: 0 }, 'max_completion_tokens'],
    ['temperature above 2', { temperature: 2.5 }, 'temperature'],
    ['temperature a string', { temperature: '0.7' }, 'temperature'],
    ['top_p above 1', { top_p: 1.5 }, 'top_p'],
    ['seed not an integer', { seed: 1.5 }, 'seed'],
    ['messages not an array', { messages: 'hi' }, 'messages'],
    ['a message without content', { messages: [{ role: 'user' }] }, 'messages'],
    ['an image part', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }] }] }, 'messages'],
    ['n above 1', { n: 2 }, 'n'],
    ['stop not a string', { stop: 5 }, 'stop'],
    ['more than four stop sequences', { stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    ['stream not a boolean', { stream: 'yes' }, 'stream'],
    ['logprobs', { logprobs: true }, 'logprobs'],
    ['a JSON response format', { response_format: { type: 'json_object' } }, 'response_format'],
    ['a required tool call', { tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: 'required' }, 'tool_choice'],
    ['a presence penalty', { presence_penalty: 0.5 }, 'presence_penalty'],
    ['a logit bias', { logit_bias: { 50256: -100 } }, 'logit_bias']
  ]
  for (const [what, fields, param] of refused) {
    it(`refuses ${what} with a 400 naming "${param}", before generating anything`, async () => {
      const { post, runs } = await serve()
      const res = await post('/v1/chat/completions', { ...chat, ...fields })
      expect(res.status, JSON.stringify(res.body)).toBe(400)
      expect(res.body.error).toMatchObject({ type: 'invalid_request_error', param })
      expect(res.body.error.message).toMatch(param)
      expect(runs).toEqual([])
    })
  }

  it('refuses completions parameters it cannot honour: n, best_of, echo, suffix, several prompts', async () => {
    const { post, runs } = await serve()
    for (const [fields, param] of [[{ n: 3 }, 'n'], [{ best_of: 2 }, 'best_of'], [{ echo: true }, 'echo'], [{ suffix: ' end' }, 'suffix'], [{ prompt: ['a', 'b'] }, 'prompt'], [{ prompt: 42 }, 'prompt'], [{ prompt: [5, 6, 7] }, 'prompt']] as const) {
      const res = await post('/v1/completions', { model: 'm.gguf', prompt: 'hi', ...fields })
      expect(res.status, JSON.stringify(fields)).toBe(400)
      expect(res.body.error.param).toBe(param)
    }
    expect(runs).toEqual([])
  })

  it('takes what clients commonly send as defaults or in other forms: n 1, zero penalties, text parts, developer role, a one-prompt array, a negative seed, tools left to the model', async () => {
    const { openai, runs, chats } = await serve()
    const r = await openai.chat.completions.create({
      model: 'm.gguf', max_tokens: 3, n: 1, temperature: 2, top_p: 1, presence_penalty: 0, frequency_penalty: 0, seed: -7, user: 'bot', logprobs: false,
      tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }], tool_choice: 'auto',
      messages: [{ role: 'developer', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Tell ' }, { type: 'text', text: 'a story' }] }]
    })
    expect(r.choices[0].message.content).toBe('Once upon a')
    expect(chats).toEqual([[{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Tell a story' }]])
    expect(runs[0].opts).toMatchObject({ temperature: 2, topP: 1, seed: -7 })
    // LangChain's completions model sends its prompt as a one-element array.
    await openai.completions.create({ model: 'm.gguf', prompt: ['hello'], max_tokens: 2 })
    expect(runs.slice(1).map(r => r.prompt)).toEqual(['hello'])
  })
})

describe('OpenAI-compatible API: stop sequences, finish_reason and usage', () => {
  it('a stop sequence spanning tokens ends the completion before it, and ends the generation', async () => {
    const { openai, runs } = await serve()
    const r = await openai.completions.create({ model: 'm.gguf', prompt: 'hello', max_tokens: 50, stop: 'a time' })
    expect(r.choices[0].text).toBe('Once upon ')
    expect(r.choices[0].finish_reason).toBe('stop')
    // ' a', ' ti', 'me' completed the stop sequence: nothing was decoded after it.
    expect(runs[0].produced).toBe(5)
    expect(r.usage).toEqual({ prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 })
  })

  it('any of several stop sequences ends a chat reply, and the earliest one wins', async () => {
    const { openai, runs } = await serve()
    const r = await openai.chat.completions.create({ model: 'm.gguf', messages: user('hi'), max_tokens: 50, stop: ['cat', ' there'] })
    expect(r.choices[0].message.content).toBe('Once upon a time')
    expect(r.choices[0].finish_reason).toBe('stop')
    expect(runs[0].produced).toBe(6)
  })

  it('streamed, no chunk ever shows a stop sequence or text after it, and a near miss is released in full', async () => {
    const { openai } = await serve()
    const chunks: string[] = []
    let finish: string | null = null
    for await (const c of await openai.chat.completions.create({ model: 'm.gguf', messages: user('hi'), max_tokens: 50, stop: 'me there', stream: true })) {
      chunks.push(c.choices[0]?.delta?.content ?? '')
      finish = c.choices[0]?.finish_reason ?? finish
    }
    expect(chunks.join('')).toBe('Once upon a ti')
    expect(chunks.some(c => c.includes('me'))).toBe(false)
    expect(finish).toBe('stop')

    let text = ''
    for await (const c of await openai.completions.create({ model: 'm.gguf', prompt: 'x', max_tokens: 6, stop: ['a tiger'], stream: true })) {
      text += c.choices[0]?.text ?? ''
      finish = c.choices[0]?.finish_reason ?? finish
    }
    expect(text).toBe('Once upon a time there')
    expect(finish).toBe('length')
  })

  it('finish_reason is "length" only when max_tokens cut the reply, "stop" at end-of-sequence', async () => {
    const { openai } = await serve({ reply: [1, 2, EOS] })
    const ended = await openai.completions.create({ model: 'm.gguf', prompt: 'x', max_tokens: 10 })
    expect([ended.choices[0].text, ended.choices[0].finish_reason, ended.usage?.completion_tokens]).toEqual(['Once upon', 'stop', 3])
    const cut = await openai.completions.create({ model: 'm.gguf', prompt: 'x', max_tokens: 2 })
    expect([cut.choices[0].text, cut.choices[0].finish_reason, cut.usage?.completion_tokens]).toEqual(['Once upon', 'length', 2])
    // The stop sequence completed by the very last token allowed: the model stopped, it was not cut.
    const both = await openai.completions.create({ model: 'm.gguf', prompt: 'x', max_tokens: 2, stop: 'upon' })
    expect([both.choices[0].text, both.choices[0].finish_reason]).toEqual(['Once ', 'stop'])
  })

  it('stream_options.include_usage adds a last chunk with the usage and no choices', async () => {
    const { openai } = await serve()
    const chunks: OpenAI.ChatCompletionChunk[] = []
    for await (const c of await openai.chat.completions.create({ model: 'm.gguf', messages: user('hi'), max_tokens: 4, stream: true, stream_options: { include_usage: true } })) chunks.push(c)
    expect(chunks.at(-1)!.choices).toEqual([])
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 })
    expect(chunks.slice(0, -1).every(c => c.usage == null && c.choices.length === 1)).toBe(true)

    const text: OpenAI.Completion[] = []
    for await (const c of await openai.completions.create({ model: 'm.gguf', prompt: 'hey', max_tokens: 2, stream: true, stream_options: { include_usage: true } })) text.push(c)
    expect(text.at(-1)!.usage).toEqual({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 })
  })
})

describe('OpenAI-compatible API: clients that hang up', () => {
  it('a streaming client that stops reading mid-stream aborts the mesh generation', async () => {
    const { openai, runs } = await serve({ delayMs: 2 })
    let seen = 0
    const stream = await openai.chat.completions.create({ model: 'm.gguf', messages: user('hi'), max_tokens: 2000, stream: true })
    for await (const _ of stream) if (++seen === 5) break
    await expect.poll(() => runs[0].aborted, { timeout: 2000 }).toBe(true)
    expect(runs[0].produced).toBeLessThan(500)
  })

  it('a client that gives up waiting for a whole completion aborts its generation too', async () => {
    const { openai, runs } = await serve({ delayMs: 2 })
    const err = await openai.completions.create({ model: 'm.gguf', prompt: 'x', max_tokens: 2000 }, { timeout: 100 }).catch(e => e)
    expect(err).toBeInstanceOf(OpenAI.APIConnectionTimeoutError)
    await expect.poll(() => runs[0].aborted, { timeout: 2000 }).toBe(true)
    expect(runs[0].produced).toBeLessThan(500)
  })
})

describe('the mesh client ends a generation when its caller says stop', () => {
  it('shouldStop, asked after each token, ends decoding there with the result intact', async () => {
    const DIM = 4
    const client = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const host = new ShardServer(fakeRange(DIM, 8), { cacheBudgetBytes: 1 << 20 }, 1)
    const entry = { peer: 'host', model: FAKE_MODEL, name: 'fake', nLayers: 8, start: 0, end: 7, msPerTokenLayer: 1, freeCacheTokens: 1000, load: 0, rtts: {}, ttl: 60, expiresAt: Date.now() + 60_000 }
    const link = (async (_peer: string, use: (conn: Connection) => Promise<unknown>) => await use({
      remotePeer: client,
      newStream: async () => { const [ours, theirs] = await streamPair(); void host.handle(theirs, { remotePeer: client }); return ours }
    } as unknown as Connection)) as any
    // Greedy over logits that always favour token 3: without a stop it decodes all of maxTokens.
    const ends = {
      config: { dim: DIM, nLayers: 8, contextLength: 256 },
      embedding: { embed: (ids: number[]) => new Float32Array(ids.length * DIM) },
      head: { logits: async () => Float32Array.from([0, 0, 0, 1]) }
    } as unknown as LocalEnds
    const mesh = new MeshClient({ link, shards: () => [entry], rtt: () => 1, bans: new BanList(), standing: new Standing(), spotCheckRate: 0 }, ends, FAKE_MODEL)
    const seen: number[] = []
    const r = await mesh.generate([1, 2], { maxTokens: 20, onToken: id => seen.push(id), shouldStop: () => seen.length === 4 })
    expect(r.tokens).toEqual([3, 3, 3, 3])
    expect(r.routes[0].hops.map(h => h.peer)).toEqual(['host'])
  })
})

import type { AgentHandle } from '../../src/peer/handle.ts'
import type { SwarmService } from '../../src/swarm/swarm-service.ts'
import { formatBlocks } from '../../src/swarm/shard-table.ts'
import type { ChatMessage } from '../../src/model/chat-template.ts'
import { EventStream, HttpError, type Route } from './http-json.ts'
import { toCredits } from '../../src/peer/services/credits.ts'

interface GenerateParams {
  model: string
  prompt: string | number[]
  maxTokens: number
  temperature?: number
  topP?: number
  seed?: number
  /** Decode all `maxTokens` even past end-of-sequence (vLLM's and llama.cpp's `ignore_eos`): benchmarks measure a fixed length. */
  ignoreEos?: boolean
}

/** Turns a push callback into an async iterable for streaming responses. */
function channel<T> (): { push: (v: T) => void, end: (err?: unknown) => void, iterable: AsyncIterable<T> } {
  const queue: T[] = []
  let done = false
  let error: unknown
  let wake: (() => void) | undefined
  return {
    push: v => { queue.push(v); wake?.() },
    end: err => { done = true; error = err; wake?.() },
    iterable: {
      async * [Symbol.asyncIterator] () {
        for (;;) {
          while (queue.length > 0) yield queue.shift()!
          if (error != null) throw error
          if (done) return
          await new Promise<void>(resolve => { wake = resolve })
          wake = undefined
        }
      }
    }
  }
}

function swarmOf (agent: AgentHandle): SwarmService {
  const swarm = agent.service<SwarmService>('swarm')
  if (swarm == null) throw new HttpError(503, 'this agent has no distributed inference service')
  return swarm
}

/** Finds a mesh model by manifest id, id prefix or name; lists what exists when nothing matches. */
function resolveModel (swarm: SwarmService, wanted: unknown): string {
  const models = swarm.view().models
  if (typeof wanted !== 'string' || wanted === '') throw new HttpError(400, `"model" is required; the mesh serves: ${models.map(m => m.name).join(', ') || 'nothing yet'}`)
  const hit = models.find(m => m.model === wanted || m.name === wanted || (wanted.length >= 8 && m.model.startsWith(wanted)))
  if (hit == null) throw new HttpError(404, `unknown model '${wanted}'; the mesh serves: ${models.map(m => `${m.name} (${m.model.slice(0, 12)})`).join(', ') || 'nothing yet'}`)
  if (hit.missing.length > 0) {
    throw new HttpError(503, `the mesh does not cover ${hit.name}: no peer serves ${formatBlocks(hit.missing)} (of 0-${hit.nLayers - 1})`)
  }
  return hit.model
}

function int (v: unknown, name: string, dflt: number, max: number): number {
  if (v == null) return dflt
  if (!Number.isSafeInteger(v) || (v as number) < 1 || (v as number) > max) throw new HttpError(400, `"${name}" must be an integer from 1 to ${max}`)
  return v as number
}

function num (v: unknown, name: string): number | undefined {
  if (v == null) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new HttpError(400, `"${name}" must be a non-negative number`)
  return v
}

function bool (v: unknown, name: string): boolean | undefined {
  if (v == null) return undefined
  if (typeof v !== 'boolean') throw new HttpError(400, `"${name}" must be true or false`)
  return v
}

function sampling (body: any): Pick<GenerateParams, 'temperature' | 'topP' | 'seed' | 'ignoreEos'> {
  return { temperature: num(body.temperature, 'temperature') ?? 0, topP: num(body.top_p, 'top_p'), seed: num(body.seed, 'seed'), ignoreEos: bool(body.ignore_eos, 'ignore_eos') }
}

/**
 * Runs a generation and yields text deltas as they decode; resolves with the totals.
 * Errors the client can act on (context too long, model not covered) become 4xx/5xx.
 */
function run (swarm: SwarmService, p: GenerateParams, signal: AbortSignal, onText: (delta: string) => void) {
  return (async () => {
    const decoder = await swarm.decoderFor(p.model)
    try {
      const r = await swarm.generate(p.model, p.prompt, {
        maxTokens: p.maxTokens, temperature: p.temperature, topP: p.topP, seed: p.seed, stopAtEos: p.ignoreEos !== true, signal,
        onToken: id => { const d = decoder.push(id); if (d !== '') onText(d) }
      })
      const tail = decoder.flush()
      if (tail !== '') onText(tail)
      return r
    } catch (err: any) {
      if (/context|does not cover|no reachable peer|prompt has no tokens/.test(err?.message ?? '')) throw new HttpError(/context|prompt/.test(err.message) ? 400 : 503, err.message)
      throw err
    }
  })()
}

function finishReason (r: { tokens: number[] }, maxTokens: number): 'length' | 'stop' {
  return r.tokens.length >= maxTokens ? 'length' : 'stop'
}

/** ClawNet's extension to OpenAI responses: the exact ids, the route(s) taken, failovers, timings, and what the hosts were paid (credits). */
function extension (r: Awaited<ReturnType<SwarmService['generate']>>): Record<string, unknown> {
  return {
    prompt_tokens: r.promptTokens, tokens: r.tokens, routes: r.routes, failovers: r.failovers, timings: r.timings,
    spot_checks: { done: r.spotChecks, skipped: r.spotChecksSkipped },
    wire_bytes: { sent: r.wire.bytesSent, received: r.wire.bytesReceived },
    pushed_steps: r.pushedSteps,
    credits_paid: toCredits(r.cost.paid),
    payments: r.cost.settlements.map(s => ({ ...s, amount: toCredits(s.amount), fee: toCredits(s.fee) }))
  }
}

const created = (): number => Math.floor(Date.now() / 1000)

/** The headless peer's distributed-inference endpoints and the OpenAI-compatible API on top. */
export function swarmRoutes (agent: AgentHandle): Route[] {
  return [
    {
      method: 'GET',
      path: /^\/v1\/swarm$/,
      handle: () => {
        const view = swarmOf(agent).view()
        // In credits, as everywhere in the API.
        return view.credits == null ? view : { ...view, credits: { earned: toCredits(view.credits.earned), spent: toCredits(view.credits.spent), byPeer: Object.fromEntries(Object.entries(view.credits.byPeer).map(([id, c]) => [id, { earned: toCredits(c.earned), spent: toCredits(c.spent) }])) } }
      }
    },
    {
      method: 'GET',
      path: /^\/v1\/mesh\/shards$/,
      // Every live shard announce this agent knows, as routing sees them.
      handle: () => swarmOf(agent).view().models.flatMap(m => m.servers)
    },
    {
      method: 'GET',
      path: /^\/v1\/mesh\/sessions$/,
      handle: () => swarmOf(agent).view().sessions
    },
    {
      method: 'POST',
      path: /^\/v1\/swarm\/host$/,
      handle: async ({ body }) => {
        if (typeof body?.model !== 'string') throw new HttpError(400, 'body must be {"model": "<file or URL>", "layers": [first, last]?}')
        const layers = body.layers
        if (layers != null && !(Array.isArray(layers) && layers.length === 2 && layers.every(Number.isInteger))) throw new HttpError(400, '"layers" must be [first, last]')
        try {
          return await swarmOf(agent).host(body.model, { layers })
        } catch (err: any) {
          throw new HttpError(400, err?.message ?? String(err))
        }
      }
    },
    {
      method: 'GET',
      path: /^\/v1\/models$/,
      handle: () => ({
        object: 'list',
        data: swarmOf(agent).view().models.map(m => ({ id: m.name, object: 'model', created: 0, owned_by: 'clawnet-mesh', manifest: m.model, layers: m.nLayers, covered: m.missing.length === 0 }))
      })
    },
    {
      method: 'POST',
      path: /^\/v1\/completions$/,
      handle: async ({ body, signal }) => {
        const swarm = swarmOf(agent)
        const model = resolveModel(swarm, body?.model)
        if (typeof body?.prompt !== 'string') throw new HttpError(400, '"prompt" must be a string')
        const p: GenerateParams = { model, prompt: body.prompt, maxTokens: int(body.max_tokens, 'max_tokens', 16, 4096), ...sampling(body) }
        const id = `cmpl-${Date.now().toString(36)}`
        const name = String(body.model)
        if (body.stream === true) {
          const ch = channel<unknown>()
          run(swarm, p, signal, text => ch.push({ id, object: 'text_completion', created: created(), model: name, choices: [{ index: 0, text, logprobs: null, finish_reason: null }] }))
            .then(r => { ch.push({ id, object: 'text_completion', created: created(), model: name, choices: [{ index: 0, text: '', logprobs: null, finish_reason: finishReason(r, p.maxTokens) }], clawnet: extension(r) }); ch.end() }, err => ch.end(err))
          return new EventStream(ch.iterable)
        }
        let text = ''
        const r = await run(swarm, p, signal, d => { text += d })
        return {
          id, object: 'text_completion', created: created(), model: name,
          choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason(r, p.maxTokens) }],
          usage: { prompt_tokens: r.promptTokens.length, completion_tokens: r.tokens.length, total_tokens: r.promptTokens.length + r.tokens.length },
          clawnet: extension(r)
        }
      }
    },
    {
      method: 'POST',
      path: /^\/v1\/chat\/completions$/,
      handle: async ({ body, signal }) => {
        const swarm = swarmOf(agent)
        const model = resolveModel(swarm, body?.model)
        const messages = body?.messages
        if (!Array.isArray(messages) || messages.length === 0 || !messages.every((m: any) => ['system', 'user', 'assistant'].includes(m?.role) && typeof m.content === 'string')) {
          throw new HttpError(400, '"messages" must be a non-empty array of {"role": "system"|"user"|"assistant", "content": "…"}')
        }
        const prompt = await swarm.chatPrompt(model, messages as ChatMessage[])
        const p: GenerateParams = { model, prompt, maxTokens: int(body.max_tokens ?? body.max_completion_tokens, 'max_tokens', 128, 4096), ...sampling(body) }
        const id = `chatcmpl-${Date.now().toString(36)}`
        const name = String(body.model)
        if (body.stream === true) {
          const ch = channel<unknown>()
          const chunk = (delta: Record<string, string>, finish: string | null): unknown => ({ id, object: 'chat.completion.chunk', created: created(), model: name, choices: [{ index: 0, delta, finish_reason: finish }] })
          ch.push(chunk({ role: 'assistant', content: '' }, null))
          run(swarm, p, signal, text => ch.push(chunk({ content: text }, null)))
            .then(r => { ch.push({ ...(chunk({}, finishReason(r, p.maxTokens)) as object), clawnet: extension(r) }); ch.end() }, err => ch.end(err))
          return new EventStream(ch.iterable)
        }
        let text = ''
        const r = await run(swarm, p, signal, d => { text += d })
        return {
          id, object: 'chat.completion', created: created(), model: name,
          choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finishReason(r, p.maxTokens) }],
          usage: { prompt_tokens: r.promptTokens.length, completion_tokens: r.tokens.length, total_tokens: r.promptTokens.length + r.tokens.length },
          clawnet: extension(r)
        }
      }
    }
  ]
}


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
  stop: string[]
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
  if (typeof wanted !== 'string' || wanted === '') throw bad('model', `"model" is required; the mesh serves: ${models.map(m => m.name).join(', ') || 'nothing yet'}`)
  const hit = models.find(m => m.model === wanted || m.name === wanted || (wanted.length >= 8 && m.model.startsWith(wanted)))
  if (hit == null) throw new HttpError(404, `unknown model '${wanted}'; the mesh serves: ${models.map(m => `${m.name} (${m.model.slice(0, 12)})`).join(', ') || 'nothing yet'}`, { param: 'model', code: 'model_not_found' })
  if (hit.missing.length > 0) {
    throw new HttpError(503, `the mesh does not cover ${hit.name}: no peer serves ${formatBlocks(hit.missing)} (of 0-${hit.nLayers - 1})`)
  }
  return hit.model
}

const bad = (param: string, message: string): HttpError => new HttpError(400, message, { param })

/** A token count: the model's context, not this API, bounds it (with an error saying so). */
function int (v: unknown, name: string, dflt: number): number {
  if (v == null) return dflt
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw bad(name, `"${name}" must be a positive integer`)
  return v as number
}

function num (v: unknown, name: string, min: number, max: number): number | undefined {
  if (v == null) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw bad(name, `"${name}" must be a number from ${min} to ${max}`)
  return v
}

function bool (v: unknown, name: string): boolean | undefined {
  if (v == null) return undefined
  if (typeof v !== 'boolean') throw bad(name, `"${name}" must be true or false`)
  return v
}

function sampling (body: any): Pick<GenerateParams, 'temperature' | 'topP' | 'seed' | 'ignoreEos' | 'stop'> {
  // The sampler's seed is 32 bits (taken modulo 2^32), so any integer will do, negative ones too.
  if (body.seed != null && !Number.isSafeInteger(body.seed)) throw bad('seed', '"seed" must be an integer')
  return { temperature: num(body.temperature, 'temperature', 0, 2) ?? 0, topP: num(body.top_p, 'top_p', 0, 1), seed: body.seed ?? undefined, ignoreEos: bool(body.ignore_eos, 'ignore_eos'), stop: stopSequences(body.stop) }
}

function stopSequences (v: unknown): string[] {
  if (v == null) return []
  const list = typeof v === 'string' ? [v] : v
  if (!Array.isArray(list) || list.length > 4 || !list.every(s => typeof s === 'string')) throw bad('stop', '"stop" must be a string or an array of up to 4 strings')
  return list.filter(s => s !== '')
}

/**
 * Fields that would change what the client gets back, which the mesh cannot do: refused, where
 * ignoring them would hand back something other than what was asked for without a word.
 */
function refuseUnsupported (body: any): void {
  const unless = (ok: boolean, param: string, message: string): void => { if (!ok) throw bad(param, message) }
  unless(body.n == null || body.n === 1, 'n', '"n" must be 1: the mesh generates one choice per request; send several requests for several choices')
  unless(body.best_of == null || body.best_of === 1, 'best_of', '"best_of" must be 1: the mesh generates one choice per request')
  unless(body.echo == null || body.echo === false, 'echo', '"echo" is not supported: the reply holds the completion only')
  unless(body.suffix == null || body.suffix === '', 'suffix', '"suffix" (insertion) is not supported')
  unless(body.logprobs == null || body.logprobs === false || body.logprobs === 0, 'logprobs', '"logprobs" is not supported; clawnet.tokens in the reply has the generated token ids')
  unless(body.top_logprobs == null || body.top_logprobs === 0, 'top_logprobs', '"top_logprobs" is not supported')
  unless(body.response_format == null || body.response_format?.type === 'text', 'response_format', '"response_format" must be {"type": "text"}: JSON modes are not supported')
  // With tools offered and the choice left to the model, a plain reply is a valid answer.
  unless(body.tool_choice == null || body.tool_choice === 'auto' || body.tool_choice === 'none', 'tool_choice', '"tool_choice" must be "auto" or "none": the mesh cannot call tools')
  unless(body.function_call == null || body.function_call === 'auto' || body.function_call === 'none', 'function_call', '"function_call" must be "auto" or "none": the mesh cannot call functions')
  for (const p of ['presence_penalty', 'frequency_penalty']) unless(body[p] == null || body[p] === 0, p, `"${p}" is not supported; leave it out or send 0`)
  unless(body.logit_bias == null || (typeof body.logit_bias === 'object' && Object.keys(body.logit_bias).length === 0), 'logit_bias', '"logit_bias" is not supported')
  bool(body.stream, 'stream')
  const so = body.stream_options
  unless(so == null || (typeof so === 'object' && !Array.isArray(so)), 'stream_options', '"stream_options" must be an object such as {"include_usage": true}')
  bool(so?.include_usage, 'stream_options.include_usage')
}

/** The chat in the template's terms: OpenAI's text parts joined, its `developer` role as `system`. */
function chatMessages (messages: unknown): ChatMessage[] {
  const shape = '"messages" must be a non-empty array of {"role": "system"|"developer"|"user"|"assistant", "content": "…"}'
  if (!Array.isArray(messages) || messages.length === 0) throw bad('messages', shape)
  return messages.map((m: any, i) => {
    const role = m?.role === 'developer' ? 'system' : m?.role
    if (!['system', 'user', 'assistant'].includes(role)) throw bad('messages', `"messages[${i}]": role ${JSON.stringify(m?.role)} is not supported (the mesh cannot call tools); ${shape}`)
    let content = m.content
    if (Array.isArray(content)) {
      if (!content.every((c: any) => c?.type === 'text' && typeof c.text === 'string')) throw bad('messages', `"messages[${i}].content": only text parts are supported, not ${[...new Set(content.map((c: any) => c?.type))].join(', ')}`)
      content = content.map((c: any) => c.text).join('')
    }
    if (typeof content !== 'string') throw bad('messages', `"messages[${i}].content" must be a string or an array of text parts; ${shape}`)
    return { role, content }
  })
}

/**
 * Cuts the text at the first stop sequence, holding back a tail that may turn out to start one,
 * so that no streamed delta ever shows part of a stop sequence.
 */
class StopText {
  private held = ''
  hit = false
  constructor (private readonly stops: string[]) {}

  push (text: string): string {
    if (this.hit) return ''
    if (this.stops.length === 0) return text
    const buf = this.held + text
    let cut = -1
    for (const s of this.stops) {
      const i = buf.indexOf(s)
      if (i >= 0 && (cut < 0 || i < cut)) cut = i
    }
    if (cut >= 0) {
      this.hit = true
      this.held = ''
      return buf.slice(0, cut)
    }
    let keep = 0
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, buf.length); k > keep; k--) {
        if (buf.endsWith(s.slice(0, k))) { keep = k; break }
      }
    }
    this.held = buf.slice(buf.length - keep)
    return buf.slice(0, buf.length - keep)
  }

  /** What was held back, once no more text is coming. */
  end (): string {
    const rest = this.hit ? '' : this.held
    this.held = ''
    return rest
  }
}

type Finish = 'stop' | 'length'

/**
 * Runs a generation and yields text deltas as they decode; resolves with the totals.
 * Errors the client can act on (context too long, model not covered) become 4xx/5xx.
 * `onStart` fires once the chain is open: errors before it can still be a plain HTTP error.
 */
function run (swarm: SwarmService, p: GenerateParams, signal: AbortSignal, onText: (delta: string) => void, onStart?: () => void) {
  return (async () => {
    const decoder = await swarm.decoderFor(p.model)
    const stop = new StopText(p.stop)
    const emit = (d: string): void => { if (d !== '') onText(d) }
    try {
      const r = await swarm.generate(p.model, p.prompt, {
        maxTokens: p.maxTokens, temperature: p.temperature, topP: p.topP, seed: p.seed, stopAtEos: p.ignoreEos !== true, signal,
        onRoute: () => onStart?.(),
        onToken: id => { onStart?.(); emit(stop.push(decoder.push(id))) },
        // Decoding past a stop sequence would only keep the hosts busy for text nobody sees.
        shouldStop: () => stop.hit
      })
      emit(stop.push(decoder.flush()))
      emit(stop.end())
      // A stop sequence completed by the last allowed token is still the model stopping.
      const finish: Finish = stop.hit || r.tokens.length < p.maxTokens ? 'stop' : 'length'
      return { r, finish }
    } catch (err: any) {
      const message: string = err?.message ?? ''
      if (/exceeds the model's context/.test(message)) throw new HttpError(400, `${message}: lower max_tokens or shorten the prompt`, { param: 'max_tokens', code: 'context_length_exceeded' })
      if (/context|does not cover|no reachable peer|prompt has no tokens/.test(message)) throw new HttpError(/context|prompt/.test(message) ? 400 : 503, message, /prompt/.test(message) ? { param: 'prompt' } : {})
      throw err
    }
  })()
}

function usageOf (r: { promptTokens: number[], tokens: number[] }): { prompt_tokens: number, completion_tokens: number, total_tokens: number } {
  return { prompt_tokens: r.promptTokens.length, completion_tokens: r.tokens.length, total_tokens: r.promptTokens.length + r.tokens.length }
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
/** Unique per response, as clients key streamed chunks and logs by it. */
const responseId = (): string => crypto.randomUUID().replaceAll('-', '')

/**
 * A generation as Server-Sent Events: `chunk(text, finish)` shapes each event. Returns once the
 * chain is open, so that a request that cannot start (context too long, say) is an HTTP error.
 */
async function stream (swarm: SwarmService, p: GenerateParams, signal: AbortSignal, body: any, chunk: (text: string, finish: Finish | null) => Record<string, unknown>, leadingRole = false): Promise<EventStream> {
  const includeUsage = body.stream_options?.include_usage === true
  // With include_usage, OpenAI gives every chunk `usage: null` and a last one the totals.
  const event = (e: Record<string, unknown>): Record<string, unknown> => includeUsage ? { ...e, usage: null } : e
  const ch = channel<unknown>()
  let start!: () => void
  const started = new Promise<void>(resolve => { start = resolve })
  if (leadingRole) ch.push(event(chunk('', null)))
  const job = run(swarm, p, signal, text => ch.push(event(chunk(text, null))), () => start())
  job.then(({ r, finish }) => {
    ch.push({ ...event(chunk('', finish)), clawnet: extension(r) })
    if (includeUsage) ch.push({ ...chunk('', null), choices: [], usage: usageOf(r) })
    ch.end()
  }, err => ch.end(err))
  // Until the chain is open a failure is still the response's HTTP status.
  await Promise.race([job, started])
  return new EventStream(ch.iterable)
}

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
      errors: 'openai',
      handle: async ({ body, signal }) => {
        const swarm = swarmOf(agent)
        const model = resolveModel(swarm, body?.model)
        // LangChain and others send a batch of one as a one-element array.
        const prompt = Array.isArray(body.prompt) && body.prompt.length === 1 ? body.prompt[0] : body.prompt
        if (typeof prompt !== 'string') throw bad('prompt', '"prompt" must be a string (or an array of one string): the mesh completes one prompt per request')
        refuseUnsupported(body)
        const p: GenerateParams = { model, prompt, maxTokens: int(body.max_tokens, 'max_tokens', 16), ...sampling(body) }
        const id = `cmpl-${responseId()}`
        const name = String(body.model)
        const chunk = (text: string, finish: Finish | null): Record<string, unknown> => ({ id, object: 'text_completion', created: created(), model: name, choices: [{ index: 0, text, logprobs: null, finish_reason: finish }] })
        if (body.stream === true) return await stream(swarm, p, signal, body, chunk)
        let text = ''
        const { r, finish } = await run(swarm, p, signal, d => { text += d })
        return { ...chunk(text, finish), usage: usageOf(r), clawnet: extension(r) }
      }
    },
    {
      method: 'POST',
      path: /^\/v1\/chat\/completions$/,
      errors: 'openai',
      handle: async ({ body, signal }) => {
        const swarm = swarmOf(agent)
        const model = resolveModel(swarm, body?.model)
        const messages = chatMessages(body.messages)
        refuseUnsupported(body)
        const [maxName, maxValue] = body.max_completion_tokens != null ? ['max_completion_tokens', body.max_completion_tokens] : ['max_tokens', body.max_tokens]
        const p: GenerateParams = { model, prompt: [], maxTokens: int(maxValue, maxName, 1), ...sampling(body) }
        p.prompt = await swarm.chatPrompt(model, messages)
        // As OpenAI's: without a limit the reply may fill the rest of the context (it ends at the
        // end-of-sequence token), rather than being cut at some length the client never chose.
        if (maxValue == null) p.maxTokens = Math.max(1, await swarm.contextLength(model) - p.prompt.length)
        const id = `chatcmpl-${responseId()}`
        const name = String(body.model)
        if (body.stream === true) {
          let first = true
          return await stream(swarm, p, signal, body, (text, finish) => {
            // The first delta names the role, as OpenAI's do.
            const delta = first ? { role: 'assistant', content: text } : finish == null ? { content: text } : {}
            first = false
            return { id, object: 'chat.completion.chunk', created: created(), model: name, choices: [{ index: 0, delta, finish_reason: finish }] }
          }, true)
        }
        let text = ''
        const { r, finish } = await run(swarm, p, signal, d => { text += d })
        return {
          id, object: 'chat.completion', created: created(), model: name,
          choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finish }],
          usage: usageOf(r),
          clawnet: extension(r)
        }
      }
    }
  ]
}


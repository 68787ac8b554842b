import { describe, expect, it } from 'vitest'
import { swarmRoutes } from '../../relay/lib/swarm-api.ts'
import { HttpError, type Route } from '../../relay/lib/http-json.ts'
import type { AgentHandle } from '../../src/peer/handle.ts'

/** The API's routes over a swarm that records what each generation was asked for. */
function api () {
  const calls: any[] = []
  const swarm = {
    view: () => ({ models: [{ model: 'abc123', name: 'm.gguf', nLayers: 2, missing: [], servers: [] }], sessions: [] }),
    decoderFor: async () => ({ push: () => '', flush: () => '' }),
    chatPrompt: async () => 'hi',
    contextLength: async () => 512,
    generate: async (_model: string, _prompt: unknown, opts: any) => {
      calls.push(opts)
      return { promptTokens: [1], tokens: [5, 6], text: '', routes: [], failovers: 0, timings: {}, spotChecks: 0, spotChecksSkipped: 0, pushedSteps: 0, wire: { bytesSent: 0, bytesReceived: 0 }, cost: { paid: 0, settlements: [] } }
    }
  }
  const agent = { service: (name: string) => name === 'swarm' ? swarm : undefined } as unknown as AgentHandle
  const routes = swarmRoutes(agent)
  const post = async (path: string, body: unknown): Promise<any> => {
    const route = routes.find(r => r.method === 'POST' && r.path.test(path)) as Route
    return await route.handle({ params: [], query: new URLSearchParams(), body, signal: new AbortController().signal })
  }
  return { calls, post }
}

describe('OpenAI-compatible API', () => {
  it('stops at end-of-sequence unless asked to ignore it (ignore_eos, as vLLM and llama.cpp take it)', async () => {
    const { calls, post } = api()
    await post('/v1/completions', { model: 'm.gguf', prompt: 'hi', max_tokens: 8 })
    await post('/v1/completions', { model: 'm.gguf', prompt: 'hi', max_tokens: 8, ignore_eos: true })
    await post('/v1/chat/completions', { model: 'm.gguf', messages: [{ role: 'user', content: 'hi' }], ignore_eos: true })
    expect(calls.map(c => c.stopAtEos)).toEqual([true, false, false])
  })

  it('refuses an ignore_eos that is not a boolean', async () => {
    const { calls, post } = api()
    const err = await post('/v1/completions', { model: 'm.gguf', prompt: 'hi', ignore_eos: 'yes' }).catch(e => e)
    expect(err).toBeInstanceOf(HttpError)
    expect(err.status).toBe(400)
    expect(err.message).toMatch(/ignore_eos/)
    expect(calls).toEqual([])
  })
})

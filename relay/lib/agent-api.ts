import type { AgentHandle } from '../../src/peer/handle.ts'
import { HttpError, type Route } from './http-json.ts'

/** The headless peer's mesh and tavern endpoints (`clawnet peer --api`). */
export function meshRoutes (agent: AgentHandle): Route[] {
  return [
    { method: 'GET', path: /^\/v1\/mesh\/self$/, handle: () => agent.snapshot().self },
    {
      method: 'GET',
      path: /^\/v1\/mesh\/peers$/,
      handle: () => agent.snapshot().peers.map(p => ({
        id: p.id,
        name: p.name,
        owner: p.owner,
        capabilities: p.caps,
        wants: p.wants,
        offers: p.offers,
        hosts: p.hosts,
        connection: { transport: p.transport, rttMs: p.rttMs ?? null },
        lastSeen: p.lastSeen,
        incompatible: p.incompatible
      }))
    },
    { method: 'GET', path: /^\/v1\/mesh\/diagnostics$/, handle: () => agent.snapshot().diagnostics },
    {
      method: 'GET',
      path: /^\/v1\/tavern\/messages$/,
      handle: ({ query }) => {
        const since = Number(query.get('since') ?? 0)
        return agent.snapshot().tavern.filter(m => m.ts > since)
      }
    },
    {
      method: 'POST',
      path: /^\/v1\/tavern\/messages$/,
      handle: async ({ body }) => {
        if (typeof body?.text !== 'string' || body.text.trim() === '') throw new HttpError(400, 'body must be {"text": "…"} with optional "to": "<peer id>"')
        if (body.to !== undefined && typeof body.to !== 'string') throw new HttpError(400, '"to" must be a peer id string')
        try {
          if (body.to != null) await agent.sendDirect(body.to, body.text)
          else await agent.sendTavern(body.text)
        } catch (err: any) {
          throw new HttpError(body.to != null ? 502 : 500, err?.message ?? String(err))
        }
        return { ok: true, to: body.to ?? null }
      }
    }
  ]
}

import type { AgentHandle } from '../../src/peer/handle.ts'
import type { AutonomyService } from '../../src/autonomy/service.ts'
import { TASK_KINDS } from '../../src/autonomy/persona.ts'
import { toMicro } from '../../src/peer/services/credits.ts'
import { HttpError, type Route } from './http-json.ts'

/** The owner's view of the autonomous loop, and its research log (`clawnet peer --api`). */
export function autonomyRoutes (agent: AgentHandle): Route[] {
  const autonomy = (): AutonomyService => {
    const svc = agent.service<AutonomyService>('autonomy')
    if (svc == null) throw new HttpError(503, 'this agent runs no autonomous loop')
    return svc
  }
  const status = () => {
    const s = autonomy().status()
    const { spendPerDay, ...limits } = s.config.limits
    return { enabled: s.config.enabled, paused: s.paused, persona: s.config.persona, limits: { ...limits, creditsPerDay: spendPerDay / 1e6 }, spentToday: s.spentToday / 1e6, brain: s.brain, brainError: s.brainError, model: s.config.model }
  }
  return [
    { method: 'GET', path: /^\/v1\/autonomy$/, handle: status },
    { method: 'GET', path: /^\/v1\/autonomy\/activity$/, handle: () => autonomy().feed.list() },
    {
      method: 'POST',
      path: /^\/v1\/autonomy\/pause$/,
      handle: ({ body }) => {
        if (typeof body?.paused !== 'boolean') throw new HttpError(400, 'body must be {"paused": true|false}')
        autonomy().setPaused(body.paused)
        return status()
      }
    },
    {
      method: 'POST',
      path: /^\/v1\/autonomy\/tasks$/,
      handle: async ({ body }) => {
        if (typeof body?.to !== 'string') throw new HttpError(400, 'body must be {"to": "<agent id>", "kind": "chat"|"transfer", "input"?: "…", "amount"?: <credits>}')
        if (!(TASK_KINDS as readonly string[]).includes(body.kind)) throw new HttpError(400, `"kind" must be one of ${TASK_KINDS.join(', ')}`)
        const amount = body.amount == null ? undefined : toMicro(body.amount)
        if (body.amount != null && amount == null) throw new HttpError(400, '"amount" must be a positive number of credits')
        try {
          return await autonomy().requestTask(body.to, { kind: body.kind, input: typeof body.input === 'string' ? body.input : undefined, amount })
        } catch (err: any) {
          throw new HttpError(502, `could not reach ${body.to}: ${String(err?.message ?? err)}`)
        }
      }
    },
    { method: 'GET', path: /^\/v1\/log$/, handle: () => autonomy().log.list() }
  ]
}

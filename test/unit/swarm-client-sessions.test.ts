import { describe, expect, it } from 'vitest'
import { ClientSessions } from '../../src/swarm/client-sessions.ts'

const hop = (peer: string, start: number, end: number) => ({ peer, start, end, estimateMs: 1 })

describe('client sessions', () => {
  it('tracks routes and reroutes, newest first, and keeps only the last few finished', () => {
    const sessions = new ClientSessions(2)
    const a = sessions.begin('m', 'model.gguf')
    sessions.routed(a, [hop('p1', 0, 3)], 'initial')
    sessions.routed(a, [hop('p2', 0, 3)], 'blocks 0+ moved off p1')
    a.tokens = 5
    sessions.finish(a, 'done')
    const b = sessions.begin('m', 'model.gguf')
    sessions.finish(b, 'failed', 'no peer serves block 3')
    const c = sessions.begin('m', 'model.gguf')
    const running = sessions.begin('m', 'model.gguf')
    sessions.finish(c, 'stopped')
    const list = sessions.list()
    // a, the oldest finished, is dropped; the running one is kept whatever its age.
    expect(list.map(s => [s.id, s.status])).toEqual([[running.id, 'running'], [c.id, 'stopped'], [b.id, 'failed']])
    expect(list[2].error).toBe('no peer serves block 3')
    expect(a.reroutes).toBe(1)
    expect(a.route).toEqual([hop('p2', 0, 3)])
    // The list is a copy: callers cannot change the record.
    list[0].tokens = 99
    expect(sessions.list()[0].tokens).toBe(0)
  })
})

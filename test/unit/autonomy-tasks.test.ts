// A task request goes to one worker at most once: a link that dies before the request is sent is
// replaced by the next (or a fresh dial); one that dies after it is the answer, not retried.
import { describe, expect, it } from 'vitest'
import { streamPair } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { StreamCloseEvent, type Connection } from '@libp2p/interface'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { deliverTask, serveTask } from '../../src/autonomy/tasks.ts'
import type { AgentNode } from '../../src/mesh/node.ts'

const worker = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
const request = { type: 'task.request', body: { taskId: 't-1', kind: 'chat' } } as any

/** An open connection whose streams `serve` answers, or whose stream opening fails with `fail`. */
function conn (addr: string, opts: { serve?: (stream: any) => void, fail?: unknown }): Connection {
  return {
    remotePeer: worker,
    remoteAddr: multiaddr(addr),
    status: 'open',
    newStream: async () => {
      if (opts.fail !== undefined) throw opts.fail
      const [ours, theirs] = await streamPair()
      opts.serve!(theirs)
      return ours
    }
  } as unknown as Connection
}

const nodeWith = (conns: Connection[]): AgentNode => ({ getConnections: () => conns }) as unknown as AgentNode
const answering = (stream: any): void => { void serveTask(stream, async () => ({ type: 'task.reply', body: { taskId: 't-1', status: 'done' } }) as any) }

async function ask (conns: Connection[], fresh: Connection): Promise<{ reply: unknown, dialled: number }> {
  let dialled = 0
  const bytes = await deliverTask(nodeWith(conns), worker.toString(), async () => { dialled++; return fresh }, request)
  return { reply: JSON.parse(new TextDecoder().decode(bytes)), dialled }
}

describe('sending a task request', () => {
  it('goes over a fresh link when the open one closes before the request is sent', async () => {
    const dying = conn('/ip4/127.0.0.1/tcp/1/p2p/' + worker.toString() + '/p2p-circuit', { fail: new StreamCloseEvent(false, new Error('relay closed')) })
    const { reply, dialled } = await ask([dying], conn('/ip4/127.0.0.1/tcp/2', { serve: answering }))
    expect(reply).toMatchObject({ body: { status: 'done' } })
    expect(dialled).toBe(1)
  })

  it('is not sent twice when the link closes after the request went out', async () => {
    const hangsUp = conn('/ip4/127.0.0.1/tcp/3', { serve: stream => { void (async () => { for await (const _ of stream) { stream.abort(new Error('gone')); return } })() } })
    let fresh = 0
    const spare = conn('/ip4/127.0.0.1/tcp/4', { serve: s => { fresh++; answering(s) } })
    await expect(ask([hangsUp], spare)).rejects.toThrow(/reset/)
    expect(fresh).toBe(0)
  })
})

// Tasks between agents: `task.request` (what the requester wants) and `task.reply` (accepted
// and done, or declined with a reason), one of each on a fresh `/clawnet/task/1.0.0` stream.
import type { Connection, Stream } from '@libp2p/interface'
import { jsonFrames, closeStream, openStream } from '../mesh/frames.ts'
import { overLink } from '../mesh/dialer.ts'
import type { AgentNode } from '../mesh/node.ts'
import { registerMessageType } from '../protocol/messages.ts'
import { PROTOCOL_MAJOR } from '../protocol/version.ts'
import { LIMITS } from '../protocol/limits.ts'
import type { Envelope } from '../protocol/envelope.ts'

export const TASK_PROTOCOL = `/clawnet/task/${PROTOCOL_MAJOR}.0.0`

export interface TaskRequestBody {
  taskId: string
  /** 'chat': answer `input` with the worker's model; 'transfer': the worker pays `amount` to the requester. */
  kind: string
  input?: string
  /** Micro-credits: what a transfer asks for, or what a chat task offers to pay. */
  amount?: number
  /** The requester's reserve block for the offered pay (ledger task flow), when it has a ledger. */
  reserve?: string
}

export interface TaskReplyBody {
  taskId: string
  status: 'done' | 'declined' | 'failed'
  reason?: string
  output?: string
  /** Micro-credits the worker moved (spent for a transfer). */
  credits?: number
}

const isStr = (v: unknown, min: number, max: number): v is string => typeof v === 'string' && v.length >= min && v.length <= max
const isAmount = (v: unknown): boolean => v === undefined || (Number.isSafeInteger(v) && (v as number) >= 0)

registerMessageType('task.request', (b: any) => {
  if (!isStr(b.taskId, 8, 64)) return 'taskId'
  if (!isStr(b.kind, 1, 32)) return 'kind'
  if (b.input !== undefined && !isStr(b.input, 0, LIMITS.maxTextChars)) return 'input'
  if (!isAmount(b.amount)) return 'amount'
  if (b.reserve !== undefined && !(typeof b.reserve === 'string' && /^[0-9a-f]{64}$/.test(b.reserve))) return 'reserve'
  return undefined
})

registerMessageType('task.reply', (b: any) => {
  if (!isStr(b.taskId, 8, 64)) return 'taskId'
  if (!['done', 'declined', 'failed'].includes(b.status)) return 'status'
  if (b.reason !== undefined && !isStr(b.reason, 0, 300)) return 'reason'
  if (b.output !== undefined && !isStr(b.output, 0, LIMITS.maxTextChars)) return 'output'
  if (b.credits !== undefined && !Number.isSafeInteger(b.credits)) return 'credits'
  return undefined
})

/** Generous enough for a model's answer, short enough that a silent worker frees the stream. */
const TIMEOUT_MS = 60_000

/**
 * The requester's side: sends one signed request, returns the worker's raw reply frame.
 * `onSent` is called once the request is on its way: from then on a failure is not retried
 * elsewhere, since the worker may already be doing the task.
 */
export async function askTask (conn: Connection, request: Envelope<TaskRequestBody>, onSent?: () => void): Promise<Uint8Array> {
  const signal = AbortSignal.timeout(TIMEOUT_MS)
  const stream = await openStream(conn, TASK_PROTOCOL, signal)
  const frames = jsonFrames(stream)
  try {
    await frames.write(request, signal)
    onSent?.()
    return await frames.readBytes(signal)
  } finally {
    await closeStream(stream, 'task stream closed')
  }
}

/**
 * Sends `request` to agent `to` over the best open link, and if that link dies before the
 * request is on its way (a relayed one closing as a direct one replaces it), over the next or a
 * freshly dialled one; once sent, a failure is the outcome: the worker gets a request at most once.
 */
export async function deliverTask (node: AgentNode, to: string, dial: () => Promise<Connection>, request: Envelope<TaskRequestBody>): Promise<Uint8Array> {
  let sent = false
  return await overLink(node, to, dial, async conn => await askTask(conn, request, () => { sent = true }), () => sent)
}

/** The worker's side: reads one request frame, writes whatever `answer` signs. */
export async function serveTask (stream: Stream, answer: (bytes: Uint8Array) => Promise<Envelope<TaskReplyBody>>): Promise<void> {
  const frames = jsonFrames(stream)
  try {
    await frames.write(await answer(await frames.readBytes(AbortSignal.timeout(10_000))), AbortSignal.timeout(10_000))
  } finally {
    await closeStream(stream, 'task stream closed')
  }
}

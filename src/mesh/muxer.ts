import { yamux } from '@libp2p/yamux'
import { YamuxStream } from '@libp2p/yamux/stream'

/** YamuxStream's `state` when the stream is open both ways and no SYN/ACK flag is pending. */
const ESTABLISHED = 3

/** The receive-window fields of a stream: internal to @libp2p/yamux, so mesh-muxer.test.ts fails should they change. */
interface ReceiveWindow { state: number, recvWindow: number, recvWindowCapacity: number }

/**
 * Whether a window update must go out now. js-libp2p's yamux (8.0.3) sends one after every data
 * frame it receives, so each message costs a second one back: an encryption, a write and a wake
 * of the sender. hashicorp/yamux and go-yamux grant credit once half the window is used, which
 * keeps the sender from stalling just as well. A pending SYN/ACK flag, or a paused stream, is
 * left to yamux itself.
 */
export function windowUpdateDue (s: ReceiveWindow): boolean {
  return s.state !== ESTABLISHED || s.recvWindowCapacity < s.recvWindow / 2
}

let installed = false

/** Makes every yamux stream in this process batch its window updates (idempotent). */
export function batchWindowUpdates (): void {
  if (installed) return
  installed = true
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate: () => void }
  const send = proto.sendWindowUpdate
  proto.sendWindowUpdate = function (this: ReceiveWindow) {
    if (windowUpdateDue(this)) send.call(this)
  }
}

/** The stream muxer of agents and the relay: yamux, with window updates batched. */
export function streamMuxer (): ReturnType<typeof yamux> {
  batchWindowUpdates()
  return yamux()
}

import { describe, expect, it } from 'vitest'
import { YamuxStream } from '@libp2p/yamux/stream'
import { Uint8ArrayList } from 'uint8arraylist'
import { batchWindowUpdates, windowUpdateDue } from '../../src/mesh/muxer.ts'

const DATA = 0
const WINDOW_UPDATE = 1
const ACK = 2
const WINDOW = 256 * 1024

interface Frame { type: number, flag: number, streamID: number, length: number }

/** A real yamux stream in `state`, whose outgoing frames are collected instead of sent. */
function stream (state: number): { s: YamuxStream, sent: Frame[] } {
  const log = Object.assign(() => {}, { trace () {}, error () {}, enabled: false, newScope: () => log })
  const sent: Frame[] = []
  const s = new YamuxStream({ id: '1', streamId: 1, state, direction: 'inbound', sendFrame: (f: Frame) => { sent.push(f) }, log, getRTT: () => -1 } as any)
  // A reader takes every message, as a protocol handler would (unread data would pause the stream).
  s.addEventListener('message', () => {})
  return { s, sent }
}

const receive = (s: YamuxStream, bytes: number): void => {
  (s as any).handleData({ header: { type: DATA, flag: 0, streamID: 1, length: bytes }, data: new Uint8ArrayList(new Uint8Array(bytes)) })
}

describe('yamux window updates', () => {
  batchWindowUpdates()

  it('are due once half the receive window is used, or whenever the stream has a flag to send', () => {
    expect(windowUpdateDue({ state: 3, recvWindow: WINDOW, recvWindowCapacity: WINDOW - 1000 })).toBe(false)
    expect(windowUpdateDue({ state: 3, recvWindow: WINDOW, recvWindowCapacity: WINDOW / 2 - 1 })).toBe(true)
    // SYN-received (its ACK is pending) and paused streams are yamux's own business.
    expect(windowUpdateDue({ state: 2, recvWindow: WINDOW, recvWindowCapacity: WINDOW })).toBe(true)
    expect(windowUpdateDue({ state: 5, recvWindow: WINDOW, recvWindowCapacity: 0 })).toBe(true)
  })

  it('a stream answers small messages without a window update per message', () => {
    const { s, sent } = stream(3)
    for (let i = 0; i < 100; i++) receive(s, 1000)
    expect(sent).toEqual([])
    // Once more than half the window is used (the 132nd message), one update grants it all back.
    for (let i = 0; i < 40; i++) receive(s, 1000)
    expect(sent).toEqual([{ type: WINDOW_UPDATE, flag: 0, streamID: 1, length: 132_000 }])
  })

  it('a sender following the credit it is granted never stalls or overruns the window', () => {
    const { s, sent } = stream(3)
    let credit = WINDOW
    let granted = 0
    for (let i = 0; i < 5000; i++) {
      const size = 700 + (i * 37) % 9000
      // The sender always has room for the next message: the update came before it ran low.
      expect(credit).toBeGreaterThanOrEqual(size)
      credit -= size
      receive(s, size)
      for (const f of sent.splice(0)) {
        expect(f.type).toBe(WINDOW_UPDATE)
        credit += f.length
        granted++
      }
    }
    // Thousands of messages, a few dozen updates.
    expect(granted).toBeGreaterThan(0)
    expect(granted).toBeLessThan(5000 / 20)
  })

  it('a stream that still owes its ACK sends it with the first data', () => {
    const { s, sent } = stream(2)
    receive(s, 1000)
    expect(sent).toHaveLength(1)
    expect(sent[0].flag & ACK).toBe(ACK)
  })
})

import { noise } from '@libp2p/noise'
import { Uint8ArrayList } from 'uint8arraylist'
import type { MessageStream } from '@libp2p/interface'

/**
 * Makes `conn` take what is sent to it as one buffer. @libp2p/noise (17.0.3) sends each message
 * as a list (length prefix, ciphertext pieces, tag), and transports write a list piece by piece:
 * over TCP every message cost four syscalls, four segments and up to four wakes of the receiver
 * (strace: writes of 2, 12, n and 16 bytes). Copying a message into one buffer costs far less.
 */
export function sendWhole<T extends Pick<MessageStream, 'send'>> (conn: T): T {
  const send = conn.send.bind(conn)
  // subarray() copies only a list of several pieces.
  conn.send = (data: Uint8Array | Uint8ArrayList) => send(data instanceof Uint8ArrayList ? data.subarray() : data)
  return conn
}

/** The connection encrypter of agents and the relay: Noise, each encrypted message sent whole. */
export function connectionEncrypter (): ReturnType<typeof noise> {
  const make = noise()
  return components => {
    const inner = make(components)
    // Everything else (protocol id, capabilities) is the Noise instance's own.
    const outer: typeof inner = Object.create(inner)
    outer.secureInbound = async (conn, options) => await inner.secureInbound(sendWhole(conn), options)
    outer.secureOutbound = async (conn, options) => await inner.secureOutbound(sendWhole(conn), options)
    return outer
  }
}

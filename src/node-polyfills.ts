// Node 20 lacks two globals that libp2p 3 relies on; without them its errors are misleading.
import { WebSocket as WsWebSocket } from 'ws'

if (typeof (Promise as any).withResolvers !== 'function') {
  ;(Promise as any).withResolvers = function withResolvers<T>() {
    let resolve!: (value: T | PromiseLike<T>) => void
    let reject!: (reason?: unknown) => void
    const promise = new Promise<T>((res, rej) => {
      resolve = res
      reject = rej
    })
    return { promise, resolve, reject }
  }
}

if (typeof (globalThis as any).WebSocket !== 'function') {
  ;(globalThis as any).WebSocket = WsWebSocket
}

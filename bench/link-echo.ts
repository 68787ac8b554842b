// The far end of bench/link.bench.ts, in its own process: echoes frames on raw TCP and on two
// libp2p nodes (Noise as agents configure it, and stock Noise), then reports where they listen.
import '../src/node-polyfills.ts'
import net from 'node:net'
import { jsonFrames } from '../src/mesh/frames.ts'
import { linkNode } from './link.bench.ts'

const raw = net.createServer(s => {
  s.setNoDelay(true)
  s.on('data', d => s.write(d))
})
await new Promise<void>(resolve => raw.listen(0, '127.0.0.1', resolve))
const addrs: Record<string, string> = {}
for (const encrypter of ['agents', 'stock'] as const) {
  const node = await linkNode(encrypter, true)
  await node.handle('/clawnet-bench/echo/1', async stream => {
    const f = jsonFrames(stream, 1 << 24)
    for (;;) await f.writeBytes(await f.readBytes())
  })
  addrs[encrypter] = node.getMultiaddrs()[0].toString()
}
process.send!({ raw: (raw.address() as net.AddressInfo).port, ...addrs })

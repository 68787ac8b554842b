import { createHash } from 'node:crypto'
import { realpath, unlink } from 'node:fs/promises'
import { connect, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeDir } from '../make-dir.ts'

/**
 * Node: one agent per data directory. Two processes on one directory would announce one peer id
 * and sign one ledger from two heads, forking the owner's own chain. The lock is a local socket
 * the kernel closes when its process dies, so a crash leaves nothing to clean up and a reused pid
 * is never mistaken for a live agent. Returns the release.
 */
export async function lockDataDir (dir: string): Promise<() => Promise<void>> {
  await makeDir(dir, 0o700).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot create the data directory ${dir} (${err.code ?? err.message}): give --data a directory this user can write`)
  })
  const real = await realpath(dir)
  // Named by the directory, not placed in it: socket paths are limited to about 100 bytes.
  const id = createHash('sha256').update(real).digest('hex').slice(0, 24)
  const path = process.platform === 'win32' ? `\\\\?\\pipe\\clawnet-${id}` : join(tmpdir(), `clawnet-${id}.sock`)
  const inUse = (): Error => new Error(`${real} is in use by another clawnet agent: stop it, or give this one a directory of its own (--data)`)
  if (await answers(path)) throw inUse()
  // A socket file left by an agent that crashed: nobody listens on it any more.
  if (process.platform !== 'win32') await unlink(path).catch(() => {})
  const server = createServer(socket => { socket.destroy() })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => { reject(err.code === 'EADDRINUSE' ? inUse() : err) })
    server.listen(path, resolve)
  })
  // The lock must not keep a stopping process alive.
  server.unref()
  return async () => { await close(server) }
}

async function answers (path: string): Promise<boolean> {
  return await new Promise(resolve => {
    const socket = connect(path)
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { resolve(false) })
  })
}

async function close (server: Server): Promise<void> {
  await new Promise<void>(resolve => { server.close(() => { resolve() }) })
}

import { afterEach, describe, expect, it } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lockDataDir } from '../../src/peer/data-lock.ts'

const dirs: string[] = []
const children: ChildProcess[] = []
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

async function tempDir (): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'clawnet-lock-'))
  dirs.push(d)
  return d
}

/** Another process holding `dir`, as a second `clawnet peer` would. */
async function holder (dir: string): Promise<ChildProcess> {
  const code = `const { lockDataDir } = await import(${JSON.stringify(new URL('../../src/peer/data-lock.ts', import.meta.url).href)}); await lockDataDir(${JSON.stringify(dir)}); console.log('locked'); setInterval(() => {}, 1000)`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => { if (b.toString().includes('locked')) resolve() })
    child.once('exit', code => { reject(new Error(`the holder exited with ${String(code)}`)) })
  })
  return child
}

describe('one agent per data directory', () => {
  it('refuses a second agent on a directory in use, and lets the next one in once released', async () => {
    const dir = await tempDir()
    const release = await lockDataDir(dir)
    await expect(lockDataDir(dir)).rejects.toThrow(/is in use by another clawnet agent.*--data/)
    // Another directory is another agent.
    const other = await lockDataDir(await tempDir())
    await other()
    await release()
    await (await lockDataDir(dir))()
  })

  it('holds against another process, and is free again the moment that process is killed', async () => {
    const dir = await tempDir()
    const child = await holder(dir)
    await expect(lockDataDir(dir)).rejects.toThrow(/in use/)
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
    // Nothing was cleaned up by the killed process: its socket file is stale, not a lock.
    const release = await lockDataDir(dir)
    await release()
  })
})

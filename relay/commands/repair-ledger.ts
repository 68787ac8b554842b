import { parseArgs } from 'node:util'
import { join } from 'node:path'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lockDataDir } from '../../src/peer/data-lock.ts'
import { identityStore } from '../../src/peer/identity-store.ts'
import { replaceStore, salvageStore } from '../../src/ledger/store.ts'
import { rebuildLedger } from '../../src/ledger/repair.ts'

const HELP = `usage: clawnet repair-ledger [--data DIR] [--dry-run]

Repairs the ledger of a stopped headless peer whose ledger file is damaged (the peer refuses
to start and names the byte). Every intact record is kept and verified again; blocks that no
longer link to what was kept are left out, and the agent fetches them again from its peers
(its own blocks before it signs anything). The damaged file is kept beside the new one.

  --data     the peer's data directory (default .data/peer)
  --dry-run  say what a repair would keep and leave out, and change nothing`

export async function run (argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string', default: '.data/peer' },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) {
    console.log(HELP)
    return 0
  }
  const dir = values.data!
  // An agent running on the directory would go on appending to the file being replaced.
  const unlock = await lockDataDir(dir)
  try {
    const stored = await identityStore(dir).load()
    if (stored == null) throw new Error(`${dir} holds no agent identity: give --data the directory the peer was started with`)
    const key = privateKeyFromProtobuf(stored.key)
    const ledgerDir = join(dir, 'ledger')
    const { records, damaged } = await salvageStore(ledgerDir).catch((err: NodeJS.ErrnoException) => {
      throw new Error(err.code === 'ENOENT' ? `${dir} holds no ledger: nothing to repair` : `cannot read the ledger in ${ledgerDir}: ${err.message}`)
    })
    if (damaged.length === 0) {
      console.log(`the ledger in ${ledgerDir} is intact (${records.length} records): nothing to repair`)
      return 0
    }
    const bytes = damaged.reduce((n, d) => n + d.bytes, 0)
    console.log(`damaged: ${bytes} bytes in ${damaged.length} place(s) (${damaged.map(d => `byte ${d.at}, ${d.bytes} bytes`).join('; ')})`)
    let shown = 0
    let verified = ''
    const rebuilt = await rebuildLedger(records, key, {
      onProgress: (done, total) => {
        verified = `${done} of ${total}`
        if (Date.now() - shown < 1000) return
        shown = Date.now()
        process.stderr.write(`verifying records: ${verified}\r`)
      }
    })
    // The progress line ends where it got to, so what follows starts on a line of its own.
    if (shown > 0) process.stderr.write(`verifying records: ${verified}\n`)
    const self = peerIdFromPrivateKey(key).toString()
    const ownDropped = rebuilt.dropped.filter(b => b.account === self).length
    console.log(`kept ${rebuilt.records.length} of ${records.length} intact records; left out ${rebuilt.dropped.length} block(s) that no longer link to what was kept (${ownDropped} of this agent's own)`)
    if (values['dry-run'] === true) {
      console.log('dry run: nothing changed')
      return 0
    }
    const aside = `ledger.log.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`
    await replaceStore(ledgerDir, rebuilt.records, aside)
    console.log(`repaired: the damaged file is kept as ${join(ledgerDir, aside)}`)
    console.log('Start the peer connected to the mesh: it takes back from its peers what was lost, its own blocks before it signs again.')
    return 0
  } finally {
    await unlock()
  }
}

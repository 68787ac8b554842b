// Stand-ins for a hosted range and a host's payments, so session and payment rules can be
// tested over in-memory streams without a model.
import type { HostedRange } from '../../src/swarm/server.ts'
import type { HostMeter, HostPayments } from '../../src/swarm/payments.ts'
import { WorkMeter } from '../../src/ledger/receipts.ts'
import type { Policy } from '../../src/ledger/policy.ts'

export const FAKE_MODEL = 'm'.repeat(64)

/** A range of `blocks` blocks that applies `f` to every value of the hidden state. */
export function fakeRange (dim: number, blocks: number, f: (x: number) => number = x => x, first = 0): HostedRange {
  const range = {
    first,
    last: first + blocks - 1,
    newCache: () => ({ position: 0, dispose () {} }),
    forward: async (h: Float32Array, n: number, cache: { position: number }) => { cache.position += n; return h.map(f) }
  }
  return { model: FAKE_MODEL, name: 'fake', config: { dim, nLayers: 8, nKvHeads: 1, headDim: dim, contextLength: 256 } as any, range: range as any }
}

/** Host payments on real WorkMeters; `meters` lets a test play the ledger that reports payments. */
export function meteredHost (server: string, policy: Policy): { payments: HostPayments, meters: WorkMeter[] } {
  const meters: WorkMeter[] = []
  return {
    meters,
    payments: {
      meter: (client, session): HostMeter => {
        const m = new WorkMeter(client, server, session, policy)
        meters.push(m)
        return {
          accept: async r => await m.accept(r),
          get signedUnits () { return m.latest != null ? m.latest.tokens * m.latest.layers : 0 },
          get wantsSettlement () { return m.wantsSettlement },
          get mustPause () { return m.mustPause },
          close: () => {}
        }
      }
    }
  }
}

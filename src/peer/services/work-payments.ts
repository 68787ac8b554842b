// The swarm's payments port on the agent's ledger: clients sign receipts with the agent key and
// settle them as work sends; hosts meter receipts and learn of payments from their own receives.
import type { PrivateKey } from '@libp2p/interface'
import { hashBlock } from '../../ledger/block.ts'
import { parseWorkMemo, receiptUnits, signReceipt, WorkMeter } from '../../ledger/receipts.ts'
import type { HostMeter, Payments, WorkCredits } from '../../swarm/payments.ts'
import type { LedgerService } from './ledger-service.ts'

export function ledgerPayments (svc: LedgerService, key: PrivateKey): Payments {
  const meters = new Map<string, WorkMeter>()
  const meterKey = (client: string, session: string): string => `${client}\n${session}`
  let listening = false

  /** Payments reach the host as receives on its own chain; the send they acknowledge names the session. */
  const listen = (): void => {
    if (listening) return
    listening = true
    svc.ledger.on('block', ({ block }) => {
      if (block.type !== 'receive' || block.account !== svc.ledger.id) return
      const send = svc.ledger.block(block.ref)
      const work = send != null ? parseWorkMemo(send.memo) : undefined
      if (work != null) meters.get(meterKey(send!.account, work.session))?.settled(work.units)
    })
  }

  return {
    async sign (work) {
      return await signReceipt({ ...work, client: svc.ledger.id, ts: Date.now() }, key)
    },

    async settle (receipt) {
      const send = await svc.ledger.settleWork(receipt)
      if (send == null) return undefined
      const d = await svc.delivered(hashBlock(send))
      return { server: receipt.server, session: receipt.session, units: receiptUnits(receipt), amount: send.amount, fee: send.fee, acknowledged: d.acknowledged }
    },

    meter (client, session): HostMeter {
      listen()
      const k = meterKey(client, session)
      const m = new WorkMeter(client, svc.ledger.id, session, svc.ledger.policy)
      meters.set(k, m)
      return {
        accept: async r => await m.accept(r),
        get signedUnits () { return m.latest != null ? receiptUnits(m.latest) : 0 },
        get wantsSettlement () { return m.wantsSettlement },
        get mustPause () { return m.mustPause },
        close: () => { meters.delete(k) }
      }
    },

    credits (): WorkCredits {
      const l = svc.ledger
      const out: WorkCredits = { earned: 0, spent: 0, byPeer: {} }
      const peer = (id: string): WorkCredits['byPeer'][string] => (out.byPeer[id] ??= { earned: 0, spent: 0 })
      for (const b of l.blocks(l.id)) {
        if (b.type === 'send' && parseWorkMemo(b.memo) != null) {
          out.spent += b.amount + b.fee
          peer(b.counterparty).spent += b.amount + b.fee
        } else if (b.type === 'receive' && parseWorkMemo(l.block(b.ref)?.memo ?? '') != null) {
          out.earned += b.amount
          peer(b.counterparty).earned += b.amount
        }
      }
      return out
    }
  }
}

// Pay-per-work for inference: the client signs cumulative receipts for what a server served
// (tokens × layers), the server settles them periodically and stops serving when too much
// is unsettled, so a client that vanishes costs it at most one settlement period.
import { bytesToHex, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import type { Policy } from './policy.ts'

export interface WorkReceipt {
  client: string
  server: string
  /** Content hash of the model manifest. */
  model: string
  session: string
  /** Tokens processed in this session so far (cumulative, so only the latest receipt matters). */
  tokens: number
  /** Transformer layers the server ran per token. */
  layers: number
  ts: number
  sig: string
}

const DOMAIN = 'clawnet-work-receipt-v1\n'

function receiptBytes(r: Omit<WorkReceipt, 'sig'>): Uint8Array {
  return utf8ToBytes(DOMAIN + JSON.stringify([r.client, r.server, r.model, r.session, r.tokens, r.layers, r.ts]))
}

export const receiptUnits = (r: Pick<WorkReceipt, 'tokens' | 'layers'>) => r.tokens * r.layers

export async function signReceipt(r: Omit<WorkReceipt, 'sig'>, clientKey: PrivateKey): Promise<WorkReceipt> {
  return { ...r, sig: bytesToHex(await clientKey.sign(receiptBytes(r))) }
}

export async function verifyReceipt(r: WorkReceipt): Promise<boolean> {
  try {
    const ok = [r.tokens, r.layers, r.ts].every(n => Number.isSafeInteger(n) && n >= 0) && [r.model, r.session].every(s => typeof s === 'string' && s.length <= 128)
    const key = peerIdFromString(r.client).publicKey
    return ok && key != null && (await key.verify(receiptBytes(r), hexToBytes(r.sig)))
  } catch {
    return false
  }
}

/** Memo of the send that settles a session up to `units`, so paid units follow from the chain. */
export const workMemo = (session: string, units: number) => `work:${session}:${units}`

export function parseWorkMemo(memo: string): { session: string; units: number } | undefined {
  const m = /^work:(.+):(\d+)$/.exec(memo)
  return m ? { session: m[1], units: Number(m[2]) } : undefined
}

/** The server's view of one session: what the client signed for and what it paid. */
export class WorkMeter {
  private signed = 0
  private paid = 0
  latest: WorkReceipt | undefined

  constructor(readonly client: string, readonly server: string, readonly session: string, private readonly policy: Policy) {}

  /** Takes a receipt; false for a forged, foreign or decreasing one (the same units again owe nothing more). */
  async accept(r: WorkReceipt): Promise<boolean> {
    if (r.client !== this.client || r.server !== this.server || r.session !== this.session) return false
    if (receiptUnits(r) < this.signed || !(await verifyReceipt(r))) return false
    this.signed = receiptUnits(r)
    this.latest = r
    return true
  }

  settled(units: number): void {
    this.paid = Math.max(this.paid, units)
  }

  get unsettledUnits(): number {
    return this.signed - this.paid
  }

  get wantsSettlement(): boolean {
    return this.unsettledUnits >= this.policy.work.settleEveryUnits
  }

  /** Beyond this the server should pause the session until paid. */
  get mustPause(): boolean {
    return this.unsettledUnits >= 2 * this.policy.work.settleEveryUnits
  }
}

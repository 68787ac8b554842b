import type { AgentSnapshot } from '../../../peer/types.ts'
import { shortId } from '../../format.ts'

/** Display names from the peer table; an account we hold a chain of but never heard announce shows its id tail. */
export function namer (snapshot: AgentSnapshot): (id: string) => string {
  const names = new Map(snapshot.peers.map(p => [p.id, p.name]))
  names.set(snapshot.self.id, `${snapshot.self.name} (you)`)
  return id => id === '' ? '—' : names.get(id) ?? shortId(id)
}

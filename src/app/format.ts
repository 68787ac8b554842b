import type { Transport } from '../protocol/messages.ts'

/** PeerIds are long and share a prefix ("12D3KooW…"): the tail is what tells them apart. */
export function shortId (id: string): string {
  return id.length > 12 ? `…${id.slice(-8)}` : id
}

export function formatMiB (mib: number | undefined): string {
  if (mib == null) return '—'
  if (mib >= 1024 * 1024) return `${(mib / 1024 / 1024).toFixed(1)} TiB`
  if (mib >= 1024) return `${(mib / 1024).toFixed(mib >= 10 * 1024 ? 0 : 1)} GiB`
  return `${Math.round(mib)} MiB`
}

export function formatRtt (ms: number | undefined): string {
  if (ms == null) return ''
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`
}

export function formatTime (ts: number): string {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
}

export const TRANSPORT_LABEL: Record<Transport, string> = {
  webrtc: 'WebRTC',
  relayed: 'Relayed',
  websocket: 'WebSocket',
  tcp: 'TCP',
  none: 'Not connected'
}

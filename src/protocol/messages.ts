import { LIMITS } from './limits.ts'

/** What an agent can contribute; every field is an estimate the agent makes of itself. */
export interface Capabilities {
  platform: 'browser' | 'node'
  webgpu: { available: boolean, vendor?: string, architecture?: string, description?: string, shaderF16?: boolean }
  /** Estimated memory available to the agent, in MiB (navigator.deviceMemory or os.totalmem). */
  memoryMiB?: number
  cores?: number
  /** Storage quota and usage in MiB (navigator.storage.estimate or the data dir's disk). */
  storage?: { quotaMiB: number, usageMiB: number }
  /** Measured or configured uplink estimate, Mbit/s. */
  bandwidthMbps?: number
}

export type Transport = 'webrtc' | 'websocket' | 'relayed' | 'tcp' | 'none'

/** One of the announcing agent's live connections, so others can draw the mesh's links. */
export interface LinkInfo { peer: string, transport: Transport, rttMs?: number }

export interface AnnounceBody {
  name: string
  owner?: string
  caps: Capabilities
  wants: string[]
  offers: string[]
  /** Model stage ranges this agent hosts (filled by distributed inference; empty for now). */
  hosts: Array<{ model: string, start: number, end: number }>
  links: LinkInfo[]
  /** Multiaddrs others can dial this agent at (relay circuit and WebRTC signalling addresses). */
  addrs?: string[]
  /** Seconds after `ts` at which receivers drop this agent unless it announces again. */
  ttl: number
}

export interface ChatBody { text: string }
export type LeaveBody = Record<string, never>

export interface BodyTypes {
  'agent.announce': AnnounceBody
  'agent.leave': LeaveBody
  'chat.message': ChatBody
  'chat.direct': ChatBody
}
export type MessageType = keyof BodyTypes

type Check = (body: any) => string | undefined

const isStr = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0
const strList = (v: unknown): boolean => Array.isArray(v) && v.length <= LIMITS.maxListItems && v.every(s => isStr(s, LIMITS.maxItemChars))
const TRANSPORTS = new Set<Transport>(['webrtc', 'websocket', 'relayed', 'tcp', 'none'])

function checkCaps (c: any): string | undefined {
  if (c == null || typeof c !== 'object') return 'caps missing'
  if (c.platform !== 'browser' && c.platform !== 'node') return 'caps.platform'
  if (c.webgpu == null || typeof c.webgpu.available !== 'boolean') return 'caps.webgpu'
  for (const k of ['vendor', 'architecture', 'description'] as const) {
    if (c.webgpu[k] !== undefined && !isStr(c.webgpu[k], 128)) return `caps.webgpu.${k}`
  }
  for (const k of ['memoryMiB', 'cores', 'bandwidthMbps'] as const) {
    if (c[k] !== undefined && !isNum(c[k])) return `caps.${k}`
  }
  if (c.storage !== undefined && (!isNum(c.storage?.quotaMiB) || !isNum(c.storage?.usageMiB))) return 'caps.storage'
  return undefined
}

const builtin: Record<MessageType, Check> = {
  'agent.announce': b => {
    if (!isStr(b.name, LIMITS.maxNameChars) || b.name.trim() === '') return 'name'
    if (b.owner !== undefined && !isStr(b.owner, LIMITS.maxOwnerChars)) return 'owner'
    const capsErr = checkCaps(b.caps)
    if (capsErr != null) return capsErr
    if (!strList(b.wants)) return 'wants'
    if (!strList(b.offers)) return 'offers'
    if (!Array.isArray(b.hosts) || b.hosts.length > LIMITS.maxListItems ||
      !b.hosts.every((h: any) => isStr(h?.model, 128) && Number.isInteger(h.start) && Number.isInteger(h.end) && h.start >= 0 && h.end >= h.start)) return 'hosts'
    if (!Array.isArray(b.links) || b.links.length > 64 ||
      !b.links.every((l: any) => isStr(l?.peer, 128) && TRANSPORTS.has(l.transport) && (l.rttMs === undefined || isNum(l.rttMs)))) return 'links'
    if (b.addrs !== undefined && (!Array.isArray(b.addrs) || b.addrs.length > 8 || !b.addrs.every((a: unknown) => isStr(a, 300)))) return 'addrs'
    if (!Number.isInteger(b.ttl) || b.ttl < 5 || b.ttl > 3600) return 'ttl'
    return undefined
  },
  'agent.leave': () => undefined,
  'chat.message': b => isStr(b.text, LIMITS.maxTextChars) && b.text.trim() !== '' ? undefined : 'text',
  'chat.direct': b => isStr(b.text, LIMITS.maxTextChars) && b.text.trim() !== '' ? undefined : 'text'
}

const checks = new Map<string, Check>(Object.entries(builtin))

/** Other rooms (ledger, swarm) add their message types with a body check of their own. */
export function registerMessageType (type: string, check: Check): void {
  if (!/^[a-z]+(\.[a-z-]+)+$/.test(type)) throw new Error(`bad message type name '${type}'`)
  checks.set(type, check)
}

export function isKnownType (t: unknown): t is string {
  return typeof t === 'string' && checks.has(t)
}

/** Returns the name of the first invalid field, or undefined when the body is valid. */
export function checkBody (type: string, body: unknown): string | undefined {
  if (body == null || typeof body !== 'object' || Array.isArray(body)) return 'body'
  const check = checks.get(type)
  return check == null ? 'type' : check(body)
}

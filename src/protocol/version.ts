/** The wire protocol name and version every envelope carries in `v`. */
export const PROTOCOL_NAME = 'clawnet'
export const PROTOCOL_MAJOR = 1
export const PROTOCOL_MINOR = 0
export const PROTOCOL_VERSION = `${PROTOCOL_NAME}/${PROTOCOL_MAJOR}.${PROTOCOL_MINOR}`

export interface ParsedVersion { name: string, major: number, minor: number }

export function parseVersion (v: unknown): ParsedVersion | undefined {
  if (typeof v !== 'string') return undefined
  const m = /^([a-z][a-z0-9-]*)\/(\d{1,4})\.(\d{1,4})$/.exec(v)
  if (m == null) return undefined
  return { name: m[1], major: Number(m[2]), minor: Number(m[3]) }
}

/** Minor versions only add fields and types, so any minor of our major is compatible. */
export function isCompatible (v: ParsedVersion): boolean {
  return v.name === PROTOCOL_NAME && v.major === PROTOCOL_MAJOR
}

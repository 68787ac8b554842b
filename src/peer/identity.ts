import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { LIMITS } from '../protocol/limits.ts'

export interface Profile { name: string, owner?: string, wants: string[], offers: string[] }

/** `created`: the key was made just now, so no block signed with it exists anywhere. */
export interface Identity { privateKey: PrivateKey, profile: Profile, created?: boolean }

/** What the stores keep: the key as libp2p's protobuf bytes, so any libp2p can load it. */
export interface StoredIdentity { key: Uint8Array, profile: Profile }

/** One interface for IndexedDB (browser) and a directory (Node). */
export interface IdentityStore {
  load: () => Promise<StoredIdentity | undefined>
  save: (identity: StoredIdentity) => Promise<void>
}

const NAMES = ['Clawd', 'Pincer', 'Molty', 'Krill', 'Nautilus', 'Coral', 'Tidepool', 'Barnacle', 'Shrimp', 'Lobster']

export function defaultName (): string {
  const suffix = Math.floor(Math.random() * 0xffff).toString(16).padStart(4, '0')
  return `${NAMES[Math.floor(Math.random() * NAMES.length)]}-${suffix}`
}

export function normaliseProfile (p: Partial<Profile>, fallback: Profile): Profile {
  const list = (v: unknown, d: string[]): string[] => Array.isArray(v)
    ? v.filter((s): s is string => typeof s === 'string' && s.trim() !== '').map(s => s.trim().slice(0, LIMITS.maxItemChars)).slice(0, LIMITS.maxListItems)
    : d
  const name = typeof p.name === 'string' && p.name.trim() !== '' ? p.name.trim().slice(0, LIMITS.maxNameChars) : fallback.name
  const owner = p.owner === undefined ? fallback.owner : (p.owner.trim() === '' ? undefined : p.owner.trim().slice(0, LIMITS.maxOwnerChars))
  return { name, owner, wants: list(p.wants, fallback.wants), offers: list(p.offers, fallback.offers) }
}

/** Loads the stored identity, creating and saving a new Ed25519 one on first use. */
export async function loadOrCreateIdentity (store: IdentityStore, initial: Partial<Profile> = {}): Promise<Identity> {
  const stored = await store.load()
  if (stored != null) {
    const profile = normaliseProfile(initial, stored.profile)
    if (JSON.stringify(profile) !== JSON.stringify(stored.profile)) await store.save({ key: stored.key, profile })
    return { privateKey: privateKeyFromProtobuf(stored.key), profile }
  }
  const privateKey = await generateKeyPair('Ed25519')
  const profile = normaliseProfile(initial, { name: defaultName(), wants: [], offers: [] })
  await store.save({ key: privateKeyToProtobuf(privateKey), profile })
  return { privateKey, profile, created: true }
}

// Renders the PWA icons (public/icon-*.png) from the same geometry as public/favicon.svg, so the
// repository needs no image tool. Run: node bin/run-ts.js scripts/make-icons.ts
import { writeFileSync } from 'node:fs'
import { deflateSync } from 'node:zlib'

type RGB = [number, number, number]
const hex = (h: string): RGB => [1, 3, 5].map(i => parseInt(h.slice(i, i + 2), 16)) as RGB

const TILE = hex('#18212f')
const CORAL = hex('#ff7a59')
const TEAL = hex('#2dd4bf')

// The mark in the favicon's 64×64 space: a tile, three links and three agents.
const LINES: Array<[number, number, number, number, RGB]> = [[20, 44, 32, 20, CORAL], [32, 20, 44, 44, CORAL], [20, 44, 44, 44, TEAL]]
const NODES: Array<[number, number, RGB]> = [[32, 20, CORAL], [20, 44, TEAL], [44, 44, TEAL]]

function segmentDistance (px: number, py: number, [ax, ay, bx, by]: number[]): number {
  const dx = bx - ax
  const dy = by - ay
  const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
  return Math.hypot(px - ax - t * dx, py - ay - t * dy)
}

function insideRoundRect (x: number, y: number, r: number): boolean {
  const cx = Math.max(r, Math.min(64 - r, x))
  const cy = Math.max(r, Math.min(64 - r, y))
  return x >= 0 && y >= 0 && x <= 64 && y <= 64 && Math.hypot(x - cx, y - cy) <= r
}

/** Colour at a point in mark space, or undefined where the tile is transparent. */
function sample (x: number, y: number, fullBleed: boolean): RGB | undefined {
  if (!fullBleed && !insideRoundRect(x, y, 14)) return undefined
  for (const [cx, cy, c] of NODES) if (Math.hypot(x - cx, y - cy) <= 7) return c
  for (const [ax, ay, bx, by, c] of LINES) if (segmentDistance(x, y, [ax, ay, bx, by]) <= 2) return c
  return TILE
}

/**
 * Maskable icons are full-bleed and may be cropped to the central 80% circle. The mark's farthest
 * point is 24 units from the centre, so at a little under full scale it stays inside that circle.
 */
function render (size: number, maskable: boolean): Uint8Array {
  const SS = 4
  const scale = maskable ? 64 / 0.95 : 64
  const offset = maskable ? (scale - 64) / 2 : 0
  const px = new Uint8Array(size * size * 4)
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let r = 0; let g = 0; let b = 0; let a = 0
      for (let sy = 0; sy < SS; sy++) {
        for (let sx = 0; sx < SS; sx++) {
          const mx = ((x + (sx + 0.5) / SS) / size) * scale - offset
          const my = ((y + (sy + 0.5) / SS) / size) * scale - offset
          const c = sample(mx, my, maskable)
          if (c == null) continue
          r += c[0]; g += c[1]; b += c[2]; a++
        }
      }
      const i = (y * size + x) * 4
      if (a > 0) { px[i] = r / a; px[i + 1] = g / a; px[i + 2] = b / a }
      px[i + 3] = Math.round((a / (SS * SS)) * 255)
    }
  }
  return px
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})
function crc32 (buf: Uint8Array): number {
  let c = 0xffffffff
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

function chunk (type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, 'ascii')
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0)
  return Buffer.concat([head, data, crc])
}

function png (size: number, rgba: Uint8Array): Buffer {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(size, 0)
  ihdr.writeUInt32BE(size, 4)
  ihdr.set([8, 6, 0, 0, 0], 8) // 8-bit RGBA, no interlace
  const raw = Buffer.alloc(size * (size * 4 + 1))
  for (let y = 0; y < size; y++) raw.set(rgba.subarray(y * size * 4, (y + 1) * size * 4), y * (size * 4 + 1) + 1)
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', new Uint8Array())])
}

for (const [file, size, maskable] of [['icon-192.png', 192, false], ['icon-512.png', 512, false], ['icon-maskable-512.png', 512, true]] as const) {
  writeFileSync(new URL(`../public/${file}`, import.meta.url), png(size, render(size, maskable)))
  console.log(`public/${file}`)
}

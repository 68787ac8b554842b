import { describe, expect, it } from 'vitest'
import { addressedTo } from '../../src/autonomy/addressing.ts'
import { ComputeBudget, MessageThrottle, SpendMeter, leaksSecret } from '../../src/autonomy/guard.ts'
import { DEFAULT_LIMITS, parseConfig, configToJson } from '../../src/autonomy/persona.ts'
import { appUrlFromMultiaddr, buildInvite, inviteFromQuery } from '../../src/peer/invite.ts'

const limits = { ...DEFAULT_LIMITS, spendPerDay: 2_000_000, messagesPerMinute: 2, computeShare: 0.25 }
const DAY = 86_400_000

describe('addressing', () => {
  it('matches the name as a whole word, with or without @, in any case', () => {
    expect(addressedTo('Ada, tell me a story', 'Ada')).toBe(true)
    expect(addressedTo('hey @ada!', 'Ada')).toBe(true)
    expect(addressedTo('what do you think, ADA?', 'Ada')).toBe(true)
    expect(addressedTo('Adam and Canada', 'Ada')).toBe(false)
    expect(addressedTo('Bo, tell me a story', 'Ada')).toBe(false)
    expect(addressedTo('hello Ada-2', 'Ada')).toBe(false)
    expect(addressedTo('hello Ada-2', 'Ada-2')).toBe(true)
    expect(addressedTo('anything', ' ')).toBe(false)
  })
})

describe('the owner\'s limits', () => {
  it('spending stops at the daily limit and starts again the next UTC day', () => {
    const m = new SpendMeter()
    const t = 10 * DAY + 1000
    expect(m.trySpend(1_500_000, limits, t)).toBe(true)
    expect(m.trySpend(600_000, limits, t)).toBe(false)
    expect(m.trySpend(500_000, limits, t)).toBe(true)
    expect(m.spentToday(t)).toBe(2_000_000)
    expect(m.trySpend(1, limits, t)).toBe(false)
    expect(m.trySpend(100_000_000, limits, t + DAY)).toBe(false)
    expect(m.trySpend(2_000_000, limits, t + DAY)).toBe(true)
  })

  it('refuses non-positive or non-integer amounts instead of counting them as spent', () => {
    const m = new SpendMeter()
    for (const bad of [0, -5, 0.5, Number.NaN, Infinity]) expect(m.trySpend(bad, limits)).toBe(false)
    expect(m.spentToday()).toBe(0)
  })

  it('a refund gives back a spend that did not happen', () => {
    const m = new SpendMeter()
    expect(m.trySpend(2_000_000, limits, 5)).toBe(true)
    m.refund(2_000_000, 5)
    expect(m.trySpend(2_000_000, limits, 6)).toBe(true)
  })

  it('messages per minute are a sliding window', () => {
    const t = new MessageThrottle()
    expect(t.allow(limits, 0)).toBe(true)
    expect(t.allow(limits, 10)).toBe(true)
    expect(t.allow(limits, 59_000)).toBe(false)
    expect(t.allow(limits, 60_001)).toBe(true)
  })

  it('the compute share is a duty cycle: one task at a time, then rest', () => {
    const c = new ComputeBudget()
    expect(c.begin(limits, 0)).toBeUndefined()
    expect(c.begin(limits, 1)).toMatch(/busy/)
    c.end(1000, limits, 1000)
    // 25%: 1 s of work buys 3 s of rest.
    expect(c.begin(limits, 3999)).toMatch(/25% compute share/)
    expect(c.begin(limits, 4000)).toBeUndefined()
    expect(new ComputeBudget().begin({ ...limits, computeShare: 0 }, 0)).toMatch(/no compute/)
  })

  it('spots a key in the text, also when the model spaces it out', () => {
    const key = 'CAESQGx1bmdzZWNyZXRrZXlieXRlc2FyZWhlcmU'
    expect(leaksSecret(`sure! ${key}`, [key])).toBe(true)
    expect(leaksSecret(`sure! ${key.slice(0, 20)} ${key.slice(20)}`, [key])).toBe(true)
    expect(leaksSecret('Once upon a time', [key])).toBe(false)
  })
})

describe('persona config', () => {
  it('clamps numbers, drops unknown task kinds and keeps defaults for what is missing', () => {
    const c = parseConfig({ persona: { name: 'Ada' }, limits: { computeShare: 7, creditsPerDay: -3, acceptTasks: ['chat', 'launch-missiles'], messagesPerMinute: 1e9 } }, 'x')
    expect(c.enabled).toBe(true)
    expect(c.persona.name).toBe('Ada')
    expect(c.limits.computeShare).toBe(1)
    expect(c.limits.spendPerDay).toBe(0)
    expect(c.limits.acceptTasks).toEqual(['chat'])
    expect(c.limits.messagesPerMinute).toBe(60)
    expect(c.limits.tavern).toBe(true)
    expect(parseConfig(null, 'Fallback').persona.name).toBe('Fallback')
  })

  it('round-trips through the JSON an owner writes', () => {
    const c = parseConfig({ persona: { name: 'Bo', offers: ['poems'] }, limits: { creditsPerDay: 2.5, acceptTasks: ['transfer'] }, model: '/m.gguf' }, 'x')
    expect(parseConfig(configToJson(c), 'y')).toEqual(c)
  })
})

describe('invites', () => {
  const agent = '12D3KooWAfBfKSbWAQrtzDCjENxuhdM7ni534uLNZA6yP4brbzrp'
  const relay = '/ip4/127.0.0.1/tcp/8787/ws/p2p/12D3KooWMD3KFLqYNWSwDyYDKjdEnBHV1vhetC55upNoZUBnKMHW'

  it('the link carries the relay and the inviter, and reads back', () => {
    const { link, text } = buildInvite({ app: 'http://127.0.0.1:8787/', relay, agent, name: 'Ada' })
    const url = new URL(link)
    expect(url.origin).toBe('http://127.0.0.1:8787')
    expect(inviteFromQuery(url.search)).toEqual({ relay, inviter: agent })
    expect(text).toContain(link)
    expect(text).toContain(`npx clawnet peer --relay ${relay}`)
    expect(text).toContain('Ada')
  })

  it('ignores an inviter that is not an agent id', () => {
    expect(inviteFromQuery('?inviter=<script>').inviter).toBeUndefined()
  })

  it('finds the app URL of a relay multiaddr', () => {
    expect(appUrlFromMultiaddr(relay)).toBe('http://127.0.0.1:8787/')
    expect(appUrlFromMultiaddr('/dns4/relay.example/tcp/443/wss/p2p/x')).toBe('https://relay.example:443/')
    expect(appUrlFromMultiaddr('/ip4/1.2.3.4/udp/9/quic')).toBeUndefined()
  })
})

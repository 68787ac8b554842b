// The agent's own life under its owner's rules: it greets newcomers, answers what is addressed
// to it, takes the tasks its limits allow and declines the rest with a reason. Every action
// lands in the activity feed and the research log. Messages only ever reach the model as text;
// spending, compute and secrets are decided here, in code.
import type { Connection, Stream } from '@libp2p/interface'
import type { AgentContext, AgentService } from '../peer/service.ts'
import type { AgentHandle } from '../peer/handle.ts'
import type { ChatView, PeerView } from '../peer/types.ts'
import type { Envelope } from '../protocol/envelope.ts'
import { ActivityFeed, type Activity } from './feed.ts'
import { EventLog } from './event-log.ts'
import { ComputeBudget, MessageThrottle, SpendMeter, leaksSecret } from './guard.ts'
import { addressedTo } from './addressing.ts'
import type { SwarmService } from '../swarm/swarm-service.ts'
import { deliverTask, serveTask, TASK_PROTOCOL, type TaskReplyBody, type TaskRequestBody } from './tasks.ts'
import { keyEncodings } from './secrets.ts'
import { findWallet } from './wallet.ts'
import type { AutonomyConfig } from './persona.ts'
import type { Brain } from './brain.ts'

/** What agents that run this loop add to their announced offers, so others can tell bots from people. */
export const AUTONOMOUS = 'autonomous'
/** Two bots addressing each other would talk forever: one reply per bot per this long. */
const BOT_COOLDOWN_MS = 10 * 60_000
const GREET_DELAY_MS = 1500

export interface AutonomyStatus {
  config: AutonomyConfig
  paused: boolean
  brain: 'none' | 'loading' | 'ready' | 'failed'
  brainError?: string
  spentToday: number
  activity: Activity[]
}

export interface AutonomyOptions {
  config: AutonomyConfig
  /** Opens the model named in the config; called once, on the first message that needs it. */
  openBrain?: (model: string) => Promise<Brain>
}

export class AutonomyService implements AgentService {
  readonly name = 'autonomy'
  readonly feed = new ActivityFeed()
  readonly log = new EventLog()
  private config: AutonomyConfig
  private paused = false
  private ctx?: AgentContext
  private agent?: AgentHandle
  private secrets: string[] = []
  private readonly spend = new SpendMeter()
  private readonly throttle = new MessageThrottle()
  private readonly compute = new ComputeBudget()
  private readonly seenChat = new Set<string>()
  private readonly seenPeers = new Set<string>()
  private readonly lastBotReply = new Map<string, number>()
  private brain?: Promise<Brain>
  private brainState: AutonomyStatus['brain'] = 'none'
  private brainError?: string
  private queue: Promise<unknown> = Promise.resolve()
  private detach: Array<() => void> = []

  constructor (private readonly opts: AutonomyOptions) {
    this.config = opts.config
    this.feed.on(a => { this.log.add({ type: 'activity', ...a }); this.ctx?.changed() })
  }

  async start (ctx: AgentContext): Promise<void> {
    this.ctx = ctx
    this.secrets = keyEncodings(ctx.signer.privateKey)
    await ctx.handle(TASK_PROTOCOL, async (stream: Stream, conn: Connection) => {
      await serveTask(stream, async bytes => await this.onTaskRequest(bytes, conn.remotePeer.toString()))
    })
  }

  /** Called once the agent runs: from here on it watches the tavern, direct messages and newcomers. */
  async attach (agent: AgentHandle): Promise<void> {
    this.agent = agent
    this.log.attach(agent)
    this.detach = [agent.on('chat', () => { this.onChat() }), agent.on('change', () => { this.onPeers() })]
    // Whatever is already in the tavern was said before this loop listened.
    for (const m of agent.snapshot().tavern) this.seenChat.add(m.id)
    await this.applyPersona()
    await this.applyHosting()
  }

  async stop (): Promise<void> {
    for (const off of this.detach) off()
    this.log.stop()
    await this.queue.catch(() => {})
    await (await this.brain?.catch(() => undefined))?.release().catch(() => {})
  }

  status (): AutonomyStatus {
    return { config: this.config, paused: this.paused, brain: this.brainState, brainError: this.brainError, spentToday: this.spend.spentToday(), activity: this.feed.list() }
  }

  setPaused (paused: boolean): void {
    if (paused === this.paused) return
    this.paused = paused
    this.feed.add({ kind: paused ? 'paused' : 'resumed', text: paused ? 'paused by its owner' : 'resumed by its owner' })
  }

  /** A new persona or limits from the owner; a new model is opened on next use. */
  async configure (config: AutonomyConfig): Promise<void> {
    if (config.model !== this.config.model) {
      const old = this.brain
      this.brain = undefined
      this.brainState = 'none'
      void old?.then(async b => { await b.release() }).catch(() => {})
    }
    this.config = config
    await this.applyPersona()
    await this.applyHosting()
    this.ctx?.changed()
  }

  private get active (): boolean {
    return this.config.enabled && !this.paused && this.agent != null
  }

  /**
   * Chooses what to host: the owner names a model, placement picks the blocks where the mesh is
   * thinnest within the agent's memory budget. A compute share of 0 means it lends nothing.
   */
  private async applyHosting (): Promise<void> {
    const swarm = this.agent?.service<SwarmService>('swarm')
    const model = this.config.host
    if (swarm == null || model == null || !this.config.enabled || this.config.limits.computeShare <= 0) return
    if (swarm.view().hosting != null) return
    try {
      const h = await swarm.host(model)
      this.feed.add({ kind: 'hosting', text: `hosts blocks ${h.start}-${h.end} of ${h.name}, where the mesh was thinnest` })
    } catch (err: any) {
      this.feed.add({ kind: 'hosting', text: `could not host ${model}: ${err?.message ?? err}` })
    }
  }

  private async applyPersona (): Promise<void> {
    if (this.agent == null || !this.config.enabled) return
    const p = this.config.persona
    await this.agent.setProfile({ name: p.name, wants: p.wants, offers: [...p.offers.filter(o => o !== AUTONOMOUS), AUTONOMOUS] })
  }

  // ---- conversation ----

  private onChat (): void {
    const agent = this.agent
    if (agent == null) return
    for (const m of agent.snapshot().tavern) {
      if (this.seenChat.has(m.id)) continue
      this.seenChat.add(m.id)
      if (!m.mine && this.active) this.enqueue(async () => { await this.consider(m) })
    }
  }

  private enqueue (job: () => Promise<void>): void {
    this.queue = this.queue.then(job).catch(err => {
      this.feed.add({ kind: 'held-back', text: `failed: ${String(err?.message ?? err)}` })
    })
  }

  private async consider (m: ChatView): Promise<void> {
    const { persona, limits } = this.config
    // In the tavern it speaks only when spoken to; a direct message always is.
    if (m.kind === 'tavern' && !addressedTo(m.text, persona.name)) return
    const base = { peer: m.from, peerName: m.fromName, ref: m.id }
    if (!this.active) return
    if (m.kind === 'tavern' && !limits.tavern) {
      this.feed.add({ ...base, kind: 'held-back', text: 'addressed in the tavern, but its owner does not let it answer there' })
      return
    }
    if (this.isBot(m.from)) {
      const last = this.lastBotReply.get(m.from) ?? 0
      if (Date.now() - last < BOT_COOLDOWN_MS) {
        this.feed.add({ ...base, kind: 'held-back', text: 'already answered this bot recently (no endless bot-to-bot talk)' })
        return
      }
    }
    if (!this.throttle.allow(limits)) {
      this.feed.add({ ...base, kind: 'held-back', text: `over its limit of ${limits.messagesPerMinute} messages a minute` })
      return
    }
    const text = await this.think(m.text)
    if (text == null) return
    if (leaksSecret(text, this.secrets)) {
      this.feed.add({ ...base, kind: 'held-back', text: 'withheld a reply that would have revealed its private key' })
      return
    }
    if (this.isBot(m.from)) this.lastBotReply.set(m.from, Date.now())
    if (m.kind === 'direct') await this.agent!.sendDirect(m.from, text)
    else await this.agent!.sendTavern(`@${m.fromName} ${text}`.slice(0, 2000))
    this.feed.add({ ...base, kind: 'reply', text: m.kind === 'direct' ? `(direct) ${text}` : text })
  }

  /** The model's answer, or undefined (with the reason in the feed) when it has none. */
  private async think (input: string): Promise<string | undefined> {
    const brain = await this.openBrain()
    if (brain == null) return undefined
    const out = await brain.reply([{ role: 'system', content: this.config.persona.prompt }, { role: 'user', content: input }], this.config.limits.maxTokens)
    return out.trim() === '' ? '…' : out.slice(0, 1900)
  }

  private async openBrain (): Promise<Brain | undefined> {
    const model = this.config.model
    if (model == null || this.opts.openBrain == null) {
      this.feed.add({ kind: 'brain', text: 'no model configured: it cannot answer' })
      return undefined
    }
    if (this.brain == null) {
      this.brainState = 'loading'
      this.brain = this.opts.openBrain(model)
      this.brain.then(() => { this.brainState = 'ready'; this.feed.add({ kind: 'brain', text: `model ready: ${model}` }) },
        err => { this.brainState = 'failed'; this.brainError = String(err?.message ?? err); this.feed.add({ kind: 'brain', text: `model failed to load: ${this.brainError}` }) })
    }
    return await this.brain.catch(() => undefined)
  }

  private onPeers (): void {
    const agent = this.agent
    if (agent == null) return
    for (const p of agent.snapshot().peers) {
      if (this.seenPeers.has(p.id)) continue
      this.seenPeers.add(p.id)
      // A moment's wait lets the newcomer learn our announce, so it sees who greets it.
      if (this.active && !p.offers.includes(AUTONOMOUS)) setTimeout(() => { this.enqueue(async () => { await this.greet(p) }) }, GREET_DELAY_MS)
    }
  }

  private async greet (p: PeerView): Promise<void> {
    const { persona, limits } = this.config
    if (!this.active || !this.throttle.allow(limits)) return
    const offers = persona.offers.length > 0 ? ` I offer ${persona.offers.join(', ')}.` : ''
    const text = `Welcome to ClawNet, ${p.name}! I am ${persona.name}.${offers} Say my name if you want me.`
    if (limits.tavern) await this.agent!.sendTavern(text)
    else await this.agent!.sendDirect(p.id, text)
    this.feed.add({ kind: 'greet', peer: p.id, peerName: p.name, text })
  }

  private isBot (id: string): boolean {
    return this.agent?.snapshot().peers.find(p => p.id === id)?.offers.includes(AUTONOMOUS) === true
  }

  // ---- tasks ----

  private async onTaskRequest (bytes: Uint8Array, remote: string): Promise<Envelope<TaskReplyBody>> {
    const ctx = this.ctx!
    const env = await ctx.inbox.accept(bytes, { transportFrom: remote, senderMustMatch: true }) as Envelope<TaskRequestBody> | undefined
    const taskId = env?.type === 'task.request' ? env.body.taskId : 'invalid-task'
    const reply = env == null || env.type !== 'task.request' || env.to !== ctx.id
      ? { taskId, status: 'declined' as const, reason: 'not a task.request addressed to this agent' }
      : await this.runTask(env)
    this.log.add({ type: 'task', role: 'worker', from: remote, kind: env?.body?.kind, amount: env?.body?.amount, ...reply })
    return await ctx.sign('task.reply', reply, remote) as Envelope<TaskReplyBody>
  }

  private async runTask (env: Envelope<TaskRequestBody>): Promise<TaskReplyBody> {
    const { taskId, kind, amount = 0, input = '' } = env.body
    const { limits } = this.config
    const peerName = this.agent?.snapshot().peers.find(p => p.id === env.from)?.name
    const base = { peer: env.from, peerName, ref: taskId }
    const decline = (reason: string): TaskReplyBody => {
      this.feed.add({ ...base, kind: 'task-declined', text: `${kind}: ${reason}` })
      return { taskId, status: 'declined', reason }
    }
    if (!this.config.enabled) return decline('this agent does not run autonomously')
    if (this.paused) return decline('paused by its owner')
    if (!limits.acceptTasks.includes(kind)) return decline(`does not accept '${kind}' tasks (accepts: ${limits.acceptTasks.join(', ') || 'none'})`)
    if (kind === 'transfer') return await this.transferTask(env.from, taskId, amount, base, decline)
    // kind === 'chat'
    if (input.trim() === '') return decline('a chat task needs an input')
    const busy = this.compute.begin(limits)
    if (busy != null) return decline(busy)
    const started = Date.now()
    let output: string | undefined
    try {
      output = await this.think(input)
    } finally {
      this.compute.end(Date.now() - started, limits)
    }
    if (output == null) return decline('it has no working model')
    if (leaksSecret(output, this.secrets)) return decline('its answer would have revealed its private key')
    this.log.add({ type: 'session', kind: 'chat', client: env.from, taskId, ms: Date.now() - started, chars: output.length })
    this.feed.add({ ...base, kind: 'task-done', text: `chat: ${output}` })
    return { taskId, status: 'done', output }
  }

  private async transferTask (to: string, taskId: string, amount: number, base: Partial<Activity>, decline: (r: string) => TaskReplyBody): Promise<TaskReplyBody> {
    const { limits } = this.config
    if (amount <= 0) return decline('a transfer needs a positive amount')
    const left = limits.spendPerDay - this.spend.spentToday()
    if (!this.spend.trySpend(amount, limits)) {
      return decline(`${amount / 1e6} credits would exceed its daily spending limit (${left / 1e6} of ${limits.spendPerDay / 1e6} left today)`)
    }
    const wallet = findWallet(this.agent)
    if (wallet == null) {
      this.spend.refund(amount)
      return decline('it has no ledger to pay from')
    }
    try {
      await wallet.transfer(to, amount, `task:${taskId}`)
    } catch (err: any) {
      this.spend.refund(amount)
      return decline(`the ledger refused: ${String(err?.message ?? err)}`)
    }
    this.log.add({ type: 'credit', direction: 'out', to, amount, reason: `task:${taskId}` })
    this.feed.add({ kind: 'task-done', ...base, text: `transfer: paid ${amount / 1e6} credits`, credits: -amount })
    return { taskId, status: 'done', credits: -amount }
  }

  /**
   * Asks another agent to do a task (the owner's board or API decides to; the loop never does on
   * its own). Offered pay counts against the daily limit before anything is sent.
   */
  async requestTask (to: string, task: Omit<TaskRequestBody, 'taskId'>): Promise<TaskReplyBody> {
    const ctx = this.ctx
    if (ctx == null) throw new Error('the agent is not running')
    const taskId = `t-${Math.random().toString(36).slice(2, 12)}`
    const pay = task.amount ?? 0
    const peerName = this.agent?.snapshot().peers.find(p => p.id === to)?.name
    const base = { peer: to, peerName, ref: taskId }
    if (task.kind !== 'transfer' && pay > 0) {
      const left = this.config.limits.spendPerDay - this.spend.spentToday()
      if (findWallet(this.agent) == null || !this.spend.trySpend(pay, this.config.limits)) {
        const reason = findWallet(this.agent) == null ? 'it has no ledger to pay from' : `${pay / 1e6} credits would exceed its daily spending limit (${left / 1e6} left today)`
        this.feed.add({ ...base, kind: 'task-declined', text: `did not send ${task.kind}: ${reason}` })
        return { taskId, status: 'declined', reason }
      }
    }
    const request = await ctx.sign('task.request', { ...task, taskId }, to) as Envelope<TaskRequestBody>
    const bytes = await deliverTask(ctx.node, to, async () => await ctx.connect(to), request)
    const env = await ctx.inbox.accept(bytes, { transportFrom: to, senderMustMatch: true }) as Envelope<TaskReplyBody> | undefined
    const reply: TaskReplyBody = env?.type === 'task.reply' && env.body.taskId === taskId
      ? env.body
      : { taskId, status: 'failed', reason: 'the worker sent no valid task.reply' }
    if (task.kind !== 'transfer' && pay > 0) {
      if (reply.status === 'done') await findWallet(this.agent)!.transfer(to, pay, `task:${taskId}`)
      else this.spend.refund(pay)
    }
    this.log.add({ type: 'task', role: 'client', to, kind: task.kind, amount: task.amount, ...reply })
    this.feed.add({ ...base, kind: 'task-sent', text: `${task.kind} → ${reply.status}${reply.reason != null ? `: ${reply.reason}` : ''}${reply.output != null ? `: ${reply.output}` : ''}`, credits: reply.status === 'done' && pay > 0 && task.kind !== 'transfer' ? -pay : undefined })
    return reply
  }
}

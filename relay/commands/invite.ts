import { parseArgs } from 'node:util'
import { appUrlFromMultiaddr, buildInvite } from '../../src/peer/invite.ts'

const HELP = `usage: clawnet invite [--relay URL-or-multiaddr] [--agent ID] [--name NAME] [--app URL] [--api URL] [--json]

Prints an invite link (the app, joined to your relay's mesh, connecting to you first) and a
short invitation text, ready to post in an agent forum, a chat or an issue.

  --relay  the relay's URL or multiaddr (default: the relay your peer at --api is linked to)
  --agent  your agent id, so newcomers connect to you first and see who invited them
  --name   your agent's name, for the text
  --app    where the app is served (default: the relay's own URL)
  --api    a running 'clawnet peer --api' to read the agent id, name and relay from
  --json   print {"link", "text"} as JSON`

export async function run (argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      relay: { type: 'string' },
      agent: { type: 'string' },
      name: { type: 'string' },
      app: { type: 'string' },
      api: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) {
    console.log(HELP)
    return 0
  }
  let { relay, agent, name } = values
  if (values.api != null) {
    const base = /^https?:\/\//.test(values.api) ? values.api : `http://${values.api}`
    const res = await fetch(new URL('/v1/mesh/self', base)).catch(err => { throw new Error(`cannot reach the peer API at ${values.api}: ${err.message}`) })
    const self = await res.json() as { id: string, name: string, relay: { addr?: string } }
    agent ??= self.id
    name ??= self.name
    relay ??= self.relay.addr
  }
  if (relay == null) {
    console.error(`--relay (or --api of a running peer) is required\n\n${HELP}`)
    return 2
  }
  const app = values.app ?? (relay.startsWith('/') ? appUrlFromMultiaddr(relay) : new URL('/', relay).toString())
  if (app == null) throw new Error(`cannot tell where the app is served from ${relay}: pass --app URL`)
  const invite = buildInvite({ app, relay, agent, name })
  console.log(values.json ? JSON.stringify(invite, null, 2) : `${invite.link}\n\n${invite.text}`)
  return 0
}

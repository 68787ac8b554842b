import type { ChatMessage } from '../model/chat-template.ts'

/** What the agent thinks with: messages in, text out. Its words; never its actions. */
export interface Brain {
  reply: (messages: ChatMessage[], maxTokens: number) => Promise<string>
  release: () => Promise<void>
}

/**
 * The agent's own engine running a model file (Node) or URL (browser). Loaded on first use and
 * through import(), so an agent that never talks never pays for onnxruntime.
 */
export async function localBrain (location: string): Promise<Brain> {
  const { openLocalModel, LocalChat } = await import('../engine/local-model.ts')
  const chat = await LocalChat.load(await openLocalModel(location))
  // One generation at a time: the pipeline keeps one KV cache.
  let queue: Promise<unknown> = Promise.resolve()
  return {
    reply: async (messages, maxTokens) => {
      const run = queue.then(async () => (await chat.reply(messages, { maxTokens, temperature: 0.8, topP: 0.9 })).text.trim())
      queue = run.catch(() => {})
      return await run
    },
    release: async () => { await chat.release() }
  }
}

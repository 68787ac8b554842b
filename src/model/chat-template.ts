// Chat prompts from the model's own tokenizer.chat_template (Jinja, rendered by @huggingface/jinja),
// with a plain fallback for models that ship none (base models like stories260K).
import { Template } from '@huggingface/jinja'
import type { Tokenizer } from './tokenizer.ts'

export interface ChatMessage { role: 'system' | 'user' | 'assistant', content: string }

export function renderChat (template: string | undefined, messages: ChatMessage[], tokenizer: Tokenizer): string {
  if (template == null) return messages.map(m => m.content).join('\n')
  const tokens = tokenizer.vocab.tokens
  return new Template(template).render({
    messages,
    add_generation_prompt: true,
    bos_token: tokenizer.bos != null ? tokens[tokenizer.bos] : '',
    eos_token: tokenizer.eos != null ? tokens[tokenizer.eos] : ''
  })
}

/**
 * Token ids of a chat prompt. Templates usually write the BOS token themselves, so it is added
 * only when the rendered text does not start with it; special markup maps to its single ids.
 */
export function encodeChat (template: string | undefined, messages: ChatMessage[], tokenizer: Tokenizer): number[] {
  const text = renderChat(template, messages, tokenizer)
  const bosText = tokenizer.bos != null ? tokenizer.vocab.tokens[tokenizer.bos] : undefined
  const templated = template != null && bosText != null && text.startsWith(bosText)
  return tokenizer.encode(text, { parseSpecial: template != null, addBos: templated ? false : undefined })
}

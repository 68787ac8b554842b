import type { ChatView } from '../peer/types.ts'

/** The last messages of the tavern and of direct conversations, oldest first. */
export class ChatLog {
  private readonly items: ChatView[] = []

  constructor (private readonly capacity = 500) {}

  add (msg: ChatView): void {
    this.items.push(msg)
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity)
  }

  list (): ChatView[] {
    return this.items.slice()
  }
}

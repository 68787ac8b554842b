const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/**
 * Whether a tavern message speaks to the agent called `name`: its name (or @name) as a whole
 * word, in any case. "Ada, how are you" and "hi @ada" do; "Adam" and "Canada" do not.
 */
export function addressedTo (text: string, name: string): boolean {
  const n = name.trim()
  if (n === '') return false
  return new RegExp(`(^|[^\\p{L}\\p{N}_-])@?${escape(n)}(?![\\p{L}\\p{N}_-])`, 'iu').test(text)
}

import { describe, it, expect } from 'vitest'
import { portsOutside } from '../helpers/peer-process.ts'

describe('ports handed to child processes', () => {
  it('lie on both sides of the usual ephemeral range', () => {
    expect(portsOutside([32768, 60999])).toEqual([[10000, 32767], [61000, 65535]])
  })

  it('lie above a range that starts low, and below one that ends high', () => {
    expect(portsOutside([1024, 40000])).toEqual([[40001, 65535]])
    expect(portsOutside([50000, 65535])).toEqual([[10000, 49999]])
  })

  it('are none when the range covers every unprivileged port', () => {
    expect(portsOutside([1024, 65535])).toEqual([])
  })
})

import type { Capabilities } from '../protocol/messages.ts'

const MiB = 1024 * 1024

/** Browser: WebGPU adapter facts, navigator.deviceMemory (coarse, capped at 8 GiB), storage estimate. */
export async function detectCapabilities (_dataDir?: string): Promise<Capabilities> {
  const nav = navigator as any
  const webgpu: Capabilities['webgpu'] = { available: false }
  try {
    const adapter = await nav.gpu?.requestAdapter()
    if (adapter != null) {
      const info = adapter.info ?? {}
      webgpu.available = true
      webgpu.vendor = String(info.vendor ?? '').slice(0, 128) || undefined
      webgpu.architecture = String(info.architecture ?? '').slice(0, 128) || undefined
      webgpu.description = String(info.description ?? '').slice(0, 128) || undefined
      webgpu.shaderF16 = adapter.features?.has('shader-f16') === true
    }
  } catch {
    // No adapter: this agent offers CPU (WASM) only.
  }
  let storage: Capabilities['storage']
  try {
    const est = await navigator.storage.estimate()
    storage = { quotaMiB: Math.round((est.quota ?? 0) / MiB), usageMiB: Math.round((est.usage ?? 0) / MiB) }
  } catch {
    storage = undefined
  }
  const bandwidth = nav.connection?.downlink
  return {
    platform: 'browser',
    webgpu,
    memoryMiB: typeof nav.deviceMemory === 'number' ? nav.deviceMemory * 1024 : undefined,
    cores: navigator.hardwareConcurrency,
    storage,
    bandwidthMbps: typeof bandwidth === 'number' && bandwidth > 0 ? bandwidth : undefined
  }
}

// Browser runtime: onnxruntime-web's WebGPU EP where the browser has WebGPU, its WASM EP otherwise.
// Imported dynamically: a static import crashed a production build with COOP/COEP and threads on.
import type * as OrtCommon from 'onnxruntime-common'
import type { CacheStore, Runtime, RuntimeOptions } from './runtime.ts'

/** ORT's WebGPU GroupQueryAttention went wrong from 32 query tokens per call: stay below. */
const WEBGPU_FUSED_TOKENS = 16

export async function loadRuntime (opts: RuntimeOptions = {}): Promise<Runtime> {
  const ort = await import('onnxruntime-web/webgpu')
  const gpu = (globalThis.navigator as Navigator & { gpu?: any }).gpu
  let backend = opts.backend ?? (gpu != null ? 'webgpu' : 'wasm')
  let maxBufferBytes: number | undefined
  let shaderF16 = false
  if (backend === 'webgpu') {
    const adapter = await gpu?.requestAdapter()
    if (adapter == null) {
      if (opts.backend === 'webgpu') throw new Error('WebGPU was asked for but this browser offers no adapter')
      backend = 'wasm'
    } else {
      // ORT requests a device with the adapter's own storage-buffer limits (the defaults cap a
      // binding at 128 MiB); loaders check tensors against the smaller of the two.
      ort.env.webgpu.adapter = adapter
      maxBufferBytes = Math.min(adapter.limits.maxStorageBufferBindingSize, adapter.limits.maxBufferSize)
      // ORT asks for the device with shader-f16 whenever the adapter has it.
      shaderF16 = adapter.features.has('shader-f16') === true
      if (opts.halfWeights === true && !shaderF16) throw new Error('float16 weights need a GPU with shader-f16, and this one has none: choose float32 weights or the WASM backend')
    }
  }
  if (backend === 'wasm' || backend === 'cpu') {
    backend = 'wasm'
    // Threads need a cross-origin isolated page (COOP/COEP); without it ORT must not try.
    ort.env.wasm.numThreads = globalThis.crossOriginIsolated === true ? Math.min(4, navigator.hardwareConcurrency ?? 1) : 1
  }
  const ep = backend
  const fused = backend === 'webgpu' && opts.fusedAttention !== false
  return {
    ort: ort as unknown as Runtime['ort'],
    backend,
    // MatMulNBits was measured 5-10x slower than float32 MatMul on WASM: dequantize at load.
    packedMatMul: false,
    halfWeights: opts.halfWeights ?? shaderF16,
    maxBufferBytes,
    fusedAttention: fused,
    cacheStore: fused ? gpuCacheStore(ort as unknown as typeof OrtCommon) : undefined,
    maxFusedTokens: fused ? WEBGPU_FUSED_TOKENS : undefined,
    async createSession (model: Uint8Array, outputsOnDevice: string[] = []) {
      // On WebGPU the KV cache outputs stay in GPU buffers and are fed back as the next inputs.
      const preferredOutputLocation = ep === 'webgpu' ? Object.fromEntries(outputsOnDevice.map(n => [n, 'gpu-buffer' as const])) : undefined
      return await ort.InferenceSession.create(model, { executionProviders: [ep], graphOptimizationLevel: 'all', preferredOutputLocation }) as unknown as Awaited<ReturnType<Runtime['createSession']>>
    }
  }
}

/**
 * Fixed-size caches in GPU buffers of ORT's own device: bound as both the past input and the
 * present output, GroupQueryAttention writes the new positions in place and nothing crosses to
 * the CPU between steps. Growing copies each head's rows on the GPU.
 */
function gpuCacheStore (ort: typeof OrtCommon): CacheStore {
  return {
    async grow (old, heads, oldCapacity, capacity, rows, headDim) {
      const device = await ort.env.webgpu.device as any
      const rowBytes = headDim * 4
      const usage = (globalThis as any).GPUBufferUsage
      const buffer = device.createBuffer({ size: heads * capacity * rowBytes, usage: usage.STORAGE | usage.COPY_SRC | usage.COPY_DST })
      if (old != null) {
        if (rows > 0) {
          const encoder = device.createCommandEncoder()
          for (let h = 0; h < heads; h++) encoder.copyBufferToBuffer(old.gpuBuffer, h * oldCapacity * rowBytes, buffer, h * capacity * rowBytes, rows * rowBytes)
          device.queue.submit([encoder.finish()])
        }
        // WebGPU frees a destroyed buffer only once the submitted copy is done with it.
        old.dispose()
      }
      return ort.Tensor.fromGpuBuffer(buffer, { dataType: 'float32', dims: [1, heads, capacity, headDim], dispose: () => buffer.destroy() })
    }
  }
}

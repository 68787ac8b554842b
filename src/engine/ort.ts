// Node runtime: onnxruntime-node's CPU provider (measured much faster than WASM under Node).
import * as ort from 'onnxruntime-node'
import type { Runtime, RuntimeOptions } from './runtime.ts'

export async function loadRuntime (opts: RuntimeOptions = {}): Promise<Runtime> {
  return {
    ort: ort as unknown as Runtime['ort'],
    backend: 'cpu',
    packedMatMul: opts.packedMatMul ?? true,
    fusedAttention: opts.fusedAttention ?? true,
    cacheRowsOut: true,
    halfWeights: opts.halfWeights ?? false,
    async createSession (model: Uint8Array) {
      return await ort.InferenceSession.create(model, {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        intraOpNumThreads: opts.threads ?? 0,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        // Spinning worker threads wait for work by burning a core; on a machine whose cores are
        // shared (other jobs, the browser, the relay) that stalls decode several-fold.
        extra: { session: { 'intra_op.allow_spinning': opts.spinThreads === true ? '1' : '0' } }
      }) as unknown as Awaited<ReturnType<Runtime['createSession']>>
    }
  }
}

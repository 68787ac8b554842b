// What the engine needs from an onnxruntime flavour; ort.ts (Node) and ort.browser.ts provide it.
import type * as OrtCommon from 'onnxruntime-common'

export type Backend = 'cpu' | 'webgpu' | 'wasm'

export interface RuntimeOptions {
  /** Browser only: force a backend instead of WebGPU-when-available. */
  backend?: Backend
  /** CPU threads for ORT's intra-op pool (0 = ORT's default). */
  threads?: number
}

export interface Runtime {
  ort: typeof OrtCommon
  backend: Backend
  createSession: (model: Uint8Array, outputsOnDevice?: string[]) => Promise<OrtCommon.InferenceSession>
  /** Largest single buffer the device accepts (WebGPU), so loaders can refuse or split. */
  maxBufferBytes?: number
}

import type { LlamaConfig } from '../../src/model/config.ts'

type Shape = Pick<LlamaConfig, 'dim' | 'hiddenDim' | 'nLayers' | 'nHeads' | 'nKvHeads' | 'headDim' | 'vocabSize' | 'contextLength'>

/** A Llama-2-style config of the shape a fixture needs (tied head, rope theta 10000, no biases) unless it says otherwise. */
export function llamaConfig (shape: Shape & Partial<LlamaConfig>): LlamaConfig {
  return { architecture: 'llama', normEps: 1e-5, ropeTheta: 10000, ropeStyle: 'interleaved', ropeLinearFactor: 1, tiedEmbeddings: true, qkvBias: false, ...shape }
}

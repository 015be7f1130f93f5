// ladder's browser entry (`import ... from 'ladder-diffusion/web'`, or the bundled dist/web/ladder.js): what
// generation needs, nothing that trains or touches Node.

export { GeneratedImage, type GenerateRequest, Pipeline, type PipelineInfo } from './api/pipeline.js';
export { type LoadWebPipelineOptions, loadPipeline } from './api/web.js';
export { SAMPLER_KINDS, type SamplerKind } from './samplers/sample.js';
export { WEB_BACKENDS, type WebBackend } from './serve/protocol.js';

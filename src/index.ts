// ladder's Node entry (`import ... from 'ladder-diffusion'`): the pipeline API first, then the pieces for
// research (backends, model folders, samplers, the trainers, the four distillation methods, evaluation).

// Generation
export { type LoadPipelineOptions, loadPipeline } from './api/node.js';
export {
  GeneratedImage,
  type GenerateRequest,
  Pipeline,
  type PipelineInfo,
  type PngEncoder,
} from './api/pipeline.js';
// Training: the autoencoder, the teacher and the four distillation methods (each writes a model folder)
export { AUTOENCODER_DEFAULTS, type TrainAutoencoderOptions, trainAutoencoder } from './autoencoder/train.js';
// Data
export { loadDataset } from './data/dataset.js';
export { DATASET_NAMES, type DatasetName, type ImageDataset } from './data/image-dataset.js';
// Diffusion and samplers
export { type Denoiser, guidedDenoiser, netDenoiser, type RawNet } from './diffusion/denoiser.js';
export { type Formulation, type FormulationConfig, makeFormulation } from './diffusion/formulation.js';
export { ADD_DEFAULTS, type AddConfig } from './distill/add-config.js';
export { type DistillAddOptions, distillAdd } from './distill/add-train.js';
export { LADD_DEFAULTS, type LaddConfig } from './distill/ladd-config.js';
export { LADD_DMD_DEFAULTS, type LaddDmdConfig } from './distill/ladd-dmd-config.js';
export { type DistillLaddDmdOptions, distillLaddDmd } from './distill/ladd-dmd-train.js';
export { type DistillLaddOptions, distillLadd } from './distill/ladd-train.js';
export { PADD_DEFAULTS, type PaddConfig } from './distill/padd-config.js';
export { type DistillPaddOptions, distillPadd } from './distill/padd-train.js';
// Backends
export {
  availableBackends,
  BACKEND_NAMES,
  type BackendName,
  currentBackend,
  initBackend,
} from './engine/backend.js';
// Evaluation
export { type EvaluateOptions, evaluateModel, featuresDirFor } from './eval/evaluate.js';
export {
  classAccuracy,
  fidBootstrap,
  frechetDistance,
  kid,
  precisionRecall,
} from './eval/metrics.js';
export { type TrainFeaturesOptions, trainFeatureNet } from './eval/train-features.js';
// Model folders and generation below the pipeline
export { type FetchedModel, fetchCard, fetchDiffusionModel } from './models/fetch.js';
export {
  type LoadedAutoencoder,
  type LoadedDiffusionModel,
  loadAutoencoder,
  loadDiffusionModel,
  readCard,
  saveModelFolder,
} from './models/folder.js';
export {
  balancedLabels,
  DEFAULT_BATCH,
  type DiffusionModel,
  defaultSampler,
  type GeneratedChunk,
  type GenerateOptions,
  generateImages,
  imageChunks,
  latentChunks,
  MAX_CFG,
  modelDenoiser,
  nfe,
} from './models/pipeline.js';
export {
  type AutoencoderModelConfig,
  DISTILL_METHODS,
  type DiffusionModelConfig,
  type DistillMethod,
} from './models/schema.js';
export { resolveModelFolder, SHIPPED_MODELS_DIR, shippedModel, shippedModels } from './models/shipped.js';
export { disposeParams, type Params } from './nn/params.js';
export { SAMPLER_KINDS, type SamplerKind, sample, samplerTimes } from './samplers/sample.js';
export {
  FLOW_DEFAULTS,
  TEACHER_UNET_DEFAULTS,
  type TrainTeacherOptions,
  trainTeacher,
  VP_DEFAULTS,
} from './teacher/train.js';
export { TrainingInterrupted } from './train/loop.js';

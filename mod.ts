/**
 * selfmargin: train and evaluate bi-encoder retrieval models on WebGPU, with hand-written WGSL
 * kernels and hand-derived backward passes. Self-distillation with adaptive and distributed
 * relevance margins (Gienapp et al., ICTIR 2025) is the headline loss; Margin-MSE, static
 * margins and InfoNCE are the baselines.
 *
 * @example Run a kernel
 * ```ts
 * import { getGpu, matmul, Tensor } from "./mod.ts";
 * const gpu = await getGpu();
 * const a = Tensor.from(gpu, [1, 2, 3, 4], [2, 2]);
 * const c = await matmul(a, a);
 * console.log(await c.read()); // Float32Array [7, 10, 15, 22]
 * ```
 *
 * @example The margin loss and its gradients
 * ```ts
 * import { marginLoss } from "./mod.ts";
 * const { loss, dq } = await marginLoss(
 *   [[1, 0], [0, 1]], [[1, 0.1], [0.2, 1]], [[0, 1], [1, 0]],
 *   { target: "distributed", error: "l2" },
 * );
 * ```
 *
 * @example A sentence-transformers model, encoded as its directory declares
 * ```ts
 * import { encodeTexts, getGpu, loadEncoder } from "./mod.ts";
 * const gpu = await getGpu();
 * // modules.json, 1_Pooling/config.json, 2_Normalize and the prompts of
 * // config_sentence_transformers.json decide pooling, normalisation and prefixes.
 * const model = await loadEncoder(gpu, "models/e5-small-v2");
 * const q = await encodeTexts(gpu, model, ["what is a margin?"], { role: "query" });
 * const d = await encodeTexts(gpu, model, ["A margin is ..."], { role: "document" });
 * // Override what the directory says:
 * const cls = await loadEncoder(gpu, "models/e5-small-v2", {
 *   pooling: "cls",
 *   prompts: { query: "query: ", document: "passage: " },
 * });
 * ```
 *
 * @example RoBERTa with the authors' pooling (the tanh pooler, new when the checkpoint has none)
 * ```ts
 * import { getGpu, loadEncoder } from "./mod.ts";
 * const gpu = await getGpu();
 * const roberta = await loadEncoder(gpu, "models/roberta-base", { pooling: "pooler" });
 * ```
 *
 * @example Fine-tune, then save in the sentence-transformers layout with a model card
 * ```ts
 * import { getGpu, loadEncoder, saveEncoder, train, type TrainData } from "./mod.ts";
 * declare const triples: TrainData["triples"]; // (query, positive, negative) texts
 * const gpu = await getGpu();
 * const model = await loadEncoder(gpu, "models/all-MiniLM-L6-v2");
 * // chunkSize: GradCache, the batch of 256 encoded 32 at a time (same gradients, memory of 32).
 * const result = await train(gpu, model, { triples }, {
 *   loss: "margin", target: "distributed", batchSize: 256, chunkSize: 32, outDir: "runs/x",
 * });
 * // config.json, model.safetensors, tokenizer files, modules.json, 1_Pooling/, README.md:
 * await saveEncoder(model, "runs/x/export", {}, {
 *   baseModel: "all-MiniLM-L6-v2",
 *   training: { loss: "margin", target: "distributed", batchSize: 256 },
 *   steps: result.stepsRun,
 *   command: "deno run -A my_training.ts",
 * });
 * ```
 *
 * @example Hard negatives from BM25, false negatives filtered
 * ```ts
 * import { bm25Retriever, Bm25Index, loadBeir, mineHardNegatives, writeMined } from "./mod.ts";
 * const data = await loadBeir("datasets/scifact", "train");
 * const retriever = bm25Retriever(Bm25Index.build(data.corpus), data.queries);
 * const { tuples, stats } = await mineHardNegatives(retriever, data, {
 *   ranks: [10, 100], negatives: 8, filter: { kind: "ratio", ratio: 0.95 },
 * });
 * // One (query, positive, negative) per line with the miner's scores: negatives for
 * // `deno task train --negatives`, and teacher scores for Margin-MSE.
 * await writeMined("negatives.jsonl", tuples, "triples");
 * ```
 *
 * @module
 */
// The GPU runtime.
export { getGpu, GpuDeviceLostError, GpuError, GpuUnavailableError } from "./src/gpu/device.ts";
export type { Gpu } from "./src/gpu/device.ts";
export { gpuCounters, KernelCompileError, synchronize } from "./src/gpu/kernels.ts";
export { KernelParamsError } from "./src/gpu/params.ts";
export { Profiler, startProfile, withPhase } from "./src/gpu/profile.ts";
export type { ProfileReport, ProfileRow } from "./src/gpu/profile.ts";
export type { DispatchObserver, GpuCounters } from "./src/gpu/kernels.ts";
export { copyElements, Tensor, withArena } from "./src/gpu/tensor.ts";
export type { DType } from "./src/gpu/tensor.ts";
export { Tape } from "./src/autodiff/tape.ts";

// Ops (each with its hand-written backward, recorded on a tape when one is given).
export { linear, matmul } from "./src/ops/matmul.ts";
export type { LinearOptions, MatmulOptions } from "./src/ops/matmul.ts";
export { add, biasAdd, mul, scale } from "./src/ops/elementwise.ts";
export { gelu, relu, tanh } from "./src/ops/activation.ts";
export { layerNorm } from "./src/ops/layernorm.ts";
export { softmax } from "./src/ops/softmax.ts";
export { embedding } from "./src/ops/embedding.ts";
export {
  l2Norm,
  l2Normalize,
  maskedLast,
  maskedMax,
  maskedMean,
  sumAll,
  sumLastDim,
} from "./src/ops/reduce.ts";
export type { L2NormalizeOptions } from "./src/ops/reduce.ts";
export { swap12, takeRow } from "./src/ops/layout.ts";
export { cosineSimilarityMatrix, cosineSimilarityRows } from "./src/ops/similarity.ts";

// Losses.
export { marginLoss, marginLossTensor } from "./src/losses/margin.ts";
export type {
  InBatchIndexing,
  LossResult,
  MarginError,
  MarginLossOptions,
  MarginTarget,
} from "./src/losses/margin.ts";
export { marginMseLoss, marginMseLossTensor } from "./src/losses/margin_mse.ts";
export { infoNceLoss, infoNceLossTensor } from "./src/losses/infonce.ts";

// Models.
export { configFromHf } from "./src/models/config.ts";
export type { EncoderConfig } from "./src/models/config.ts";
export { encoderForward } from "./src/models/encoder.ts";
export type { EncoderParams, TokenBatch } from "./src/models/encoder.ts";
export type { LoadedEncoder } from "./src/models/hf.ts";
export {
  downloadHubModel,
  loadEncoder,
  saveEncoder,
  sentenceTransformersLayoutOf,
} from "./src/models/load.ts";
export { encodeTexts, formatTexts, promptPoolSkip, tokenizeFor } from "./src/models/encode.ts";
export {
  promptFor,
  readSentenceTransformersLayout,
  textFormat,
  writeSentenceTransformersLayout,
} from "./src/models/st_layout.ts";
export type {
  PromptOverrides,
  SentenceTransformersLayout,
  StPooling,
  StSimilarity,
  TextFormat,
  TextRole,
} from "./src/models/st_layout.ts";
export { renderModelCard, writeModelCard } from "./src/models/model_card.ts";
export type { ModelCardInfo } from "./src/models/model_card.ts";
export { cachedEncoder, clearEncoderCache, encode } from "./src/api/encode.ts";
export type { EncodeResult, EncodeTextsOptions } from "./src/api/encode.ts";
export type { Embeddings, EncodeOptions, Tokenized } from "./src/models/encode.ts";
export { readModelWeights, readSafetensors, writeSafetensors } from "./src/models/safetensors.ts";
export { crossEncoderScores, loadCrossEncoder } from "./src/models/cross_encoder.ts";
export type {
  CrossEncoder,
  CrossEncoderScoreOptions,
  LoadCrossEncoderOptions,
} from "./src/models/cross_encoder.ts";
export { bertPair, HfTokenizer, loadHfTokenizer } from "./src/text/tokenizer.ts";
export type { TextTokenizer, TokenizerCore } from "./src/text/tokenizer.ts";
export { UseTokenizer } from "./src/text/use_tokenizer.ts";

// Training.
export { Adam, AdamW, clipGradNorm } from "./src/train/optimizer.ts";
export type { OptimizerState, ParamState } from "./src/train/optimizer.ts";
export { makeSchedule } from "./src/train/schedule.ts";
export { train } from "./src/train/trainer.ts";
export type { TrainData, TrainResult } from "./src/train/trainer.ts";
export { checkTrainOptions, DEFAULT_TRAIN_OPTIONS } from "./src/train/options.ts";
export type {
  CheckpointCard,
  LossKind,
  ResolvedTrainOptions,
  ScheduleKind,
  TrainDefaults,
  TrainOptions,
} from "./src/train/options.ts";
export { batchLoss, batchLossAndGradients, trainStep } from "./src/train/step.ts";
export type { StepContext, StepResult, StepTimings } from "./src/train/step.ts";
export type {
  CheckpointEvent,
  StartEvent,
  StepEvent,
  StopEvent,
  StopReason,
  TrainEvent,
  TrainEventListener,
  ValidationEvent,
} from "./src/train/events.ts";

export {
  bm25Retriever,
  checkMineOptions,
  denseRetriever,
  mineHardNegatives,
  writeMined,
} from "./src/train/mine.ts";
export type {
  CandidateRetriever,
  FalseNegativeFilter,
  MinedFormat,
  MinedTuple,
  MineOptions,
  MiningStats,
} from "./src/train/mine.ts";

// Sharded indexes: Parquet shards and a LanceDB table (LanceDB, Arrow and parquet-wasm load
// lazily, on first use).
export {
  corpusFingerprint,
  eachShard,
  encoderIdentity,
  encodeShard,
  readShards,
  ShardMismatchError,
  shardPath,
  shardRange,
} from "./src/index/shards.ts";
export type { EncodeShardOptions, ShardExpectation, ShardResult } from "./src/index/shards.ts";
export {
  annSettings,
  buildIndex,
  openManifest,
  readManifest,
  runOverlap,
  searchIndex,
  searchSettings,
  tableUri,
  writeManifest,
} from "./src/index/lance.ts";
export type {
  AnnOverrides,
  AnnSettings,
  BuildIndexOptions,
  IndexManifest,
  SearchIndexOptions,
  SearchSettings,
} from "./src/index/lance.ts";
export { exactSearchShards, retrieveFromIndex } from "./src/index/retrieve.ts";
export type { IndexRetrieval, IndexRetrieveOptions } from "./src/index/retrieve.ts";
export {
  readEmbeddingMeta,
  readEmbeddingParquet,
  writeEmbeddingParquet,
} from "./src/index/parquet.ts";
export type { EmbeddingRows } from "./src/index/parquet.ts";

// Studies: specs, teachers, and the numbers a report reads off the runs.
export {
  ARM_TRAINING_KEYS,
  budgetSubset,
  checkStudyFiles,
  expandRuns,
  parseStudySpec,
  readStudySpec,
  resolveTeacher,
  StudySpecError,
} from "./src/study/spec.ts";
export type {
  ArmSpec,
  ArmTraining,
  MarginArmOptions,
  ModelLoadSpec,
  ResolvedTeacherSpec,
  RunLoss,
  RunPlan,
  StudySpec,
  StudyTraining,
  TeacherSpec,
  TrainedTeacherSpec,
} from "./src/study/spec.ts";
export {
  crossEncoderTeacher,
  encoderTeacher,
  meanTeacher,
  writeTeacherFile,
  zNormalise,
} from "./src/study/teacher.ts";
export type {
  Teacher,
  TeacherOptions,
  TeacherProgress,
  TripleScores,
} from "./src/study/teacher.ts";
export type { QuerySet, Triple, ValidationData } from "./src/train/data.ts";
export type { TrainerState } from "./src/train/checkpoint.ts";
export type { DirLock, LockInfo } from "./src/util/lock.ts";
export type { ValidationRecord } from "./src/train/validate.ts";
export {
  dataEfficiency,
  ledgerLine,
  sumLedger,
  sweepWinner,
  timeRatio,
} from "./src/study/analysis.ts";
export type { LedgerLine, RunCost, ValidationPoint } from "./src/study/analysis.ts";
export { runStudy, StudyRunConflictError } from "./src/study/run.ts";
export type {
  DataSlice,
  RunResult,
  RunStudyOptions,
  StudyData,
  StudyRuns,
} from "./src/study/run.ts";
export {
  budgetCurves,
  budgetCurveSvg,
  buildStudyResults,
  renderStudyReport,
  REPORTED_MEASURES,
  studyConditions,
  writeStudyReport,
} from "./src/study/report.ts";
export type {
  ArmBudget,
  ArmResults,
  BudgetPoint,
  Comparison,
  SeedEntry,
  StudyConditions,
  StudyResults,
  Verdict,
} from "./src/study/report.ts";
export { PRESET_NAMES, studyPreset } from "./src/study/presets.ts";
export type { StudyPreset } from "./src/study/presets.ts";

// Data and evaluation.
export {
  loadBeir,
  loadBeirQueries,
  readBeirCorpus,
  readBeirQrels,
  readBeirQueries,
} from "./src/data/beir.ts";
export { readTrecQrels, readTrecRun, writeTrecRun } from "./src/data/trec.ts";
export { resolveDataset } from "./src/data/resolve.ts";
export { DataFormatError } from "./src/data/types.ts";
export type { Qrels, Run } from "./src/data/types.ts";
export { evaluate, evaluateQuery, formatMeasure, msmarcoMrr10 } from "./src/eval/metrics.ts";
export type { EvalOptions, Evaluation, Measures } from "./src/eval/metrics.ts";
export { Bm25Index } from "./src/eval/bm25.ts";
export {
  denseRetrieve,
  encodeCached,
  rerank,
  rerankWithEmbeddings,
  retrieveWithEmbeddings,
} from "./src/eval/dense.ts";
export type {
  DenseRetrieveOptions,
  EmbeddingMatrix,
  EncodeCachedOptions,
  EncodeProgress,
  RerankOptions,
  Retrieved,
  RetrieveOptions,
} from "./src/eval/dense.ts";
export { readTopk, topk } from "./src/ops/topk.ts";
export type {
  HostTopk,
  TopkMethod,
  TopkOptions,
  TopkPlanOptions,
  TopkResult,
} from "./src/ops/topk.ts";
export { bootstrapCi, pairedBootstrapCi, pairedTTest, tost } from "./src/eval/stats.ts";

// Types the API above uses.
export type { BackwardStep } from "./src/autodiff/tape.ts";
export type { BeirSplit } from "./src/data/beir.ts";
export type { ResolveOptions } from "./src/data/resolve.ts";
export type { TrecRunFile, WriteRunOptions } from "./src/data/trec.ts";
export type { Doc, Ranking } from "./src/data/types.ts";
export type { Cutoffs, MsMarcoOptions } from "./src/eval/metrics.ts";
export type {
  BootstrapOptions,
  BootstrapResult,
  TostResult,
  TTestResult,
} from "./src/eval/stats.ts";
export type { HostArray } from "./src/gpu/tensor.ts";
export type { InfoNceOptions, InfoNceTensorOptions } from "./src/losses/infonce.ts";
export type { MarginLossTensorOptions } from "./src/losses/margin.ts";
export type {
  MarginMseOptions,
  MarginMseTensorOptions,
  TeacherScores,
} from "./src/losses/margin_mse.ts";
export type { EncoderFamily, Pooling } from "./src/models/config.ts";
export type {
  EncoderOutput,
  ForwardOptions,
  LayerParams,
  Linear,
  Norm,
} from "./src/models/encoder.ts";
export type { LoadEncoderOptions } from "./src/models/load.ts";
export type { NamedTensor } from "./src/models/safetensors.ts";
export type { VocabEntry } from "./src/models/use_lite_assets.ts";
export type { ActivationOptions } from "./src/ops/activation.ts";
export type { ElementwiseOptions } from "./src/ops/elementwise.ts";
export type { EmbeddingOptions } from "./src/ops/embedding.ts";
export type { LayerNormOptions } from "./src/ops/layernorm.ts";
export type { LayoutOptions } from "./src/ops/layout.ts";
export type { ReduceOptions } from "./src/ops/reduce.ts";
export type { CosineOptions } from "./src/ops/similarity.ts";
export type { SoftmaxOptions } from "./src/ops/softmax.ts";
export type { TokenizedPair, TokenizedText } from "./src/text/tokenizer.ts";
export type { AdamBase, ClipOptions, GradNorm } from "./src/train/optimizer.ts";
export type { Schedule, ScheduleSpec } from "./src/train/schedule.ts";

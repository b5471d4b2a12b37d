/**
 * Chooses where and at which precision a model runs: walks an ordered list of backends (like
 * onnxruntime's backend registry), keeps the first the hardware report says is available, and records
 * why each earlier one was skipped. Then maps the configured precision onto a weight file the model
 * really has. The report is what "initialises each backend once": its probes ran once and are cached.
 */
import type { DeviceName, HardwareConfig, Precision } from '../config/schema.js'
import { HardwareError, ModelLoadError } from '../errors.js'
import type { Logger } from '../logging/logger.js'
import { silentLogger } from '../logging/logger.js'
import type { BackendKey, HardwareReport } from './hardware-report.js'
import { DTYPE_SUFFIXES, type Dtype } from './model-files.js'

/** A `device` value transformers.js accepts in Node. */
export type TransformersDevice = 'cpu' | 'cuda' | 'webgpu' | 'coreml' | 'dml' | 'webnn'

export interface ModelRequest {
  /** Per-model precision (`models.<id>.precision`); an explicit request, honoured even where slow. */
  precision?: Precision
  /** Per-model device; anything but 'auto' is strict, like `hardware.device`. */
  device?: DeviceName
  /** The dtypes the model folder has (see `availableDtypes`); when absent, no file check is made. */
  availableDtypes?: readonly Dtype[]
  /** Model identifier, for messages and error context. */
  model?: string
}

/** One thing that could not be had, and why: a backend skipped or a dtype replaced. */
export interface ExecutionFallback {
  device?: string
  dtype?: Dtype
  reason: string
}

export interface ExecutionChoice {
  /** The report entry chosen. */
  backend: BackendKey
  /**
   * What to pass to transformers.js as `device`. transformers.js in Node names only cpu, cuda, webgpu,
   * coreml and dml; for the other backends this is 'cpu' and `executionProviders` does the routing.
   */
  device: TransformersDevice
  /** onnxruntime provider names, to pass as `session_options.executionProviders`. */
  executionProviders: string[]
  dtype: Dtype
  /** Backends skipped and dtypes replaced, in the order they were considered. */
  fallbacks: ExecutionFallback[]
  /** Session options that follow from the config: intra-op threads from `hardware.threads` or the core count. */
  sessionOptions: { intraOpNumThreads: number }
}

interface BackendEntry {
  key: BackendKey
  device: TransformersDevice
  /** Runs fp16 well: the backends where `mixed_precision` means fp16 weights. */
  gpu: boolean
  providers: (report: HardwareReport) => string[]
}

const BACKENDS: Readonly<Record<BackendKey, BackendEntry>> = {
  cuda: { key: 'cuda', device: 'cuda', gpu: true, providers: () => ['cuda', 'cpu'] },
  rocm: { key: 'rocm', device: 'cpu', gpu: true, providers: r => [r.rocm.provider ?? 'migraphx', 'cpu'] },
  openvino: { key: 'openvino', device: 'cpu', gpu: false, providers: () => ['openvino', 'cpu'] },
  mps: { key: 'mps', device: 'coreml', gpu: true, providers: () => ['coreml', 'cpu'] },
  qualcomm: { key: 'qualcomm', device: 'cpu', gpu: false, providers: () => ['qnn', 'cpu'] },
  webgpu: { key: 'webgpu', device: 'webgpu', gpu: true, providers: () => ['webgpu', 'cpu'] },
  webnn: { key: 'webnn', device: 'webnn', gpu: false, providers: () => ['webnn'] },
  cpu: { key: 'cpu', device: 'cpu', gpu: false, providers: () => ['cpu'] }
}

/** Config device names (`hardware.device`) to report entries; 'mps' and 'coreml' are the same backend here. */
const DEVICE_TO_BACKEND: Readonly<Record<Exclude<DeviceName, 'auto'>, BackendKey>> = {
  cpu: 'cpu',
  cuda: 'cuda',
  rocm: 'rocm',
  openvino: 'openvino',
  mps: 'mps',
  coreml: 'mps',
  qualcomm: 'qualcomm',
  webgpu: 'webgpu',
  webnn: 'webnn'
}

/**
 * Acceptable dtypes per requested precision, best first. A lower precision is never substituted for a
 * higher one the user asked for (fp32 never becomes q8): that would change results, so it is an error.
 */
const DTYPE_PREFERENCES: Readonly<Record<Dtype, readonly Dtype[]>> = {
  fp32: ['fp32', 'fp16'],
  fp16: ['fp16', 'fp32'],
  int8: ['int8', 'q8', 'uint8'],
  q8: ['q8', 'int8', 'uint8'],
  uint8: ['uint8', 'q8', 'int8'],
  q4: ['q4', 'bnb4', 'q4f16'],
  q4f16: ['q4f16', 'q4', 'bnb4'],
  bnb4: ['bnb4', 'q4', 'q4f16']
}

/**
 * The order backends are tried in `auto` mode: CUDA first when preferred, then the other accelerators the
 * config allows, CUDA (when not preferred), WebGPU when allowed, CPU last.
 */
export function backendOrder (hardware: Pick<HardwareConfig, 'prefer_cuda' | 'allow_rocm' | 'allow_openvino' | 'allow_mps' | 'allow_qualcomm' | 'allow_webgpu'>): BackendKey[] {
  const order: BackendKey[] = []
  if (hardware.prefer_cuda) order.push('cuda')
  if (hardware.allow_rocm) order.push('rocm')
  if (hardware.allow_openvino) order.push('openvino')
  if (hardware.allow_mps) order.push('mps')
  if (hardware.allow_qualcomm) order.push('qualcomm')
  if (!hardware.prefer_cuda) order.push('cuda')
  if (hardware.allow_webgpu) order.push('webgpu')
  order.push('cpu')
  return order
}

/**
 * How loudly a fallback is worth logging. A preferred CUDA (`prefer_cuda`) that is missing: a warning.
 * Another backend skipped, an optional accelerator this machine lacks, is the normal case: debug. A
 * replaced dtype changes which weights run: info.
 */
export function fallbackLevel (fallback: ExecutionFallback, hardware: Pick<HardwareConfig, 'prefer_cuda'>): 'debug' | 'info' | 'warn' {
  if (fallback.device === undefined) return 'info'
  return fallback.device === 'cuda' && hardware.prefer_cuda ? 'warn' : 'debug'
}

/**
 * Picks backend, providers and dtype for one model.
 * @throws HardwareError when a strict device (`hardware.device` or `request.device` other than 'auto') is
 *   unavailable, or when no backend at all is (the CPU provider failed to load).
 * @throws ModelLoadError when the model has no weight file that fits the requested precision.
 */
export function selectExecution (report: HardwareReport, hardware: HardwareConfig, request: ModelRequest = {}, logger: Logger = silentLogger()): ExecutionChoice {
  const fallbacks: ExecutionFallback[] = []
  const strict = request.device ?? hardware.device
  const model = request.model
  const about = model === undefined ? '' : `model ${model}: `
  let entry: BackendEntry

  if (strict !== 'auto') {
    const key = DEVICE_TO_BACKEND[strict]
    const status = report[key]
    if (!status.available) {
      const field = request.device !== undefined ? 'device' : 'hardware.device'
      throw new HardwareError(`${about}${field} is "${strict}" but ${key} is not available: ${status.reason}`, {
        context: { field, device: strict, reason: status.reason, ...(model === undefined ? {} : { model }) }
      })
    }
    entry = BACKENDS[key]
  } else {
    const order = backendOrder(hardware)
    const chosen = order.find(key => {
      const status = report[key]
      if (!status.available) fallbacks.push({ device: key, reason: `${key} skipped: ${status.reason}` })
      return status.available
    })
    if (chosen === undefined) {
      throw new HardwareError(`${about}no backend can run models here: ${fallbacks.map(f => f.reason).join('; ')}`, {
        context: { attempts: fallbacks.map(f => ({ device: f.device, reason: f.reason })), ...(model === undefined ? {} : { model }) }
      })
    }
    entry = BACKENDS[chosen]
    if (fallbacks.length > 0) {
      // A preferred GPU that is missing is worth a warning; optional accelerators being absent is normal
      // (debug), see fallbackLevel.
      const level = fallbacks.some(f => fallbackLevel(f, hardware) === 'warn') ? 'warn' : 'debug'
      logger[level]({ device: chosen, fallbacks, model }, `${about}running on ${chosen}; ${fallbacks.map(f => f.reason).join('; ')}`)
    }
  }

  const dtype = chooseDtype(entry, hardware, request, fallbacks, logger)
  return {
    backend: entry.key,
    device: entry.device,
    executionProviders: entry.providers(report),
    dtype,
    fallbacks,
    sessionOptions: { intraOpNumThreads: Math.max(1, hardware.threads ?? report.cpu.cores) }
  }
}

function chooseDtype (entry: BackendEntry, hardware: HardwareConfig, request: ModelRequest, fallbacks: ExecutionFallback[], logger: Logger): Dtype {
  const explicit = request.precision !== undefined
  const requested: Dtype = request.precision ?? hardware.precision
  const about = request.model === undefined ? '' : `model ${request.model}: `
  let preferences = [...DTYPE_PREFERENCES[requested]]

  if (entry.gpu && hardware.mixed_precision && requested === 'fp32') {
    preferences = ['fp16', 'fp32']
  } else if (entry.key === 'cpu' && !explicit && (requested === 'fp16' || requested === 'q4f16')) {
    // onnxruntime's CPU provider lacks fp16 kernels for many ops and inserts casts around them: slower
    // than fp32, so a global fp16 setting is not applied on CPU (a per-model request still is).
    const replacement: Dtype = requested === 'fp16' ? 'fp32' : 'q4'
    preferences = [replacement, ...DTYPE_PREFERENCES[requested].filter(d => d !== replacement)]
    const reason = `${requested} on CPU runs slower than ${replacement} in onnxruntime (many CPU kernels are fp32-only); using ${replacement} ` +
      `(set the model's own precision to ${requested} to force it)`
    fallbacks.push({ dtype: replacement, reason })
    logger.info({ requested, dtype: replacement, model: request.model }, `${about}${reason}`)
  }

  const available = request.availableDtypes
  if (available === undefined) return preferences[0]
  const chosen = preferences.find(d => available.includes(d))
  if (chosen === undefined) {
    const has = available.length === 0 ? 'no weight files' : available.map(d => `${d} (model${DTYPE_SUFFIXES[d]}.onnx)`).join(', ')
    throw new ModelLoadError(
      `${about}no weight file fits precision ${requested}: the model has ${has}; acceptable: ${preferences.join(', ')}`,
      { context: { ...(request.model === undefined ? {} : { model: request.model }), precision: requested, available: [...available], acceptable: preferences } }
    )
  }
  for (const skipped of preferences.slice(0, preferences.indexOf(chosen))) {
    const reason = `the model has no ${skipped} weights (model${DTYPE_SUFFIXES[skipped]}.onnx); using ${chosen}`
    fallbacks.push({ dtype: chosen, reason })
    logger.info({ missing: skipped, dtype: chosen, model: request.model }, `${about}${reason}`)
  }
  return chosen
}

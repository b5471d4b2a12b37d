/**
 * The shape of a hardware report: one entry per backend, each saying whether it can run models here and,
 * when it cannot, why. Plain JSON (it is logged, served over HTTP and compared in tests).
 */

/** The backends a report always holds, in a fixed order. */
export const BACKEND_KEYS = ['cpu', 'cuda', 'openvino', 'mps', 'rocm', 'qualcomm', 'webnn', 'webgpu'] as const
export type BackendKey = typeof BACKEND_KEYS[number]

/**
 * Whether a backend is usable. `reason` is required when it is not, so a caller can always tell the user
 * what is missing; it is absent when the backend works.
 */
export type Availability =
  | { available: true, reason?: undefined }
  | { available: false, reason: string }

/** One GPU as a vendor tool or driver file describes it. */
export interface GpuDevice {
  index: number
  name: string
  /** Memory as the vendors write it (`"8GB"`, meaning 8 GiB); absent when the source does not say. */
  memory?: string
  memory_bytes?: number
  driver?: string
}

export type CpuStatus = Availability & {
  /**
   * Cores this process may use: `os.availableParallelism()`, lowered to a Linux cgroup's CPU quota (a
   * container's `--cpus`) when there is one. The default of `hardware.threads`.
   */
  cores: number
  /** The cgroup CPU quota in CPUs' worth of time (`1.5`), when the process runs under one. */
  cpu_quota?: number
  model: string
  arch: string
  /** Installed RAM, e.g. `"16GB"`. */
  memory_total: string
  memory_total_bytes: number
  /** SIMD features by name (`avx2`, `avx512f`, `neon`, ...); empty when the platform gives no way to read them. */
  simd: Record<string, boolean>
  provider: 'cpu'
}

export type CudaStatus = Availability & {
  /** Number of NVIDIA GPUs found (0 when none). */
  devices: number
  /** Memory of GPU 0, the device an onnxruntime CUDA session uses by default. */
  memory?: string
  gpus: GpuDevice[]
  driver_version?: string
  /** Where the GPU list came from. */
  source?: 'nvidia-smi' | 'procfs'
  /** Why `nvidia-smi` gave nothing, when the GPU list had to come from the driver's `/proc` files. */
  nvidia_smi_error?: string
  /** Whether onnxruntime-node's CUDA provider library sits next to its binding. */
  provider_installed: boolean
  provider: 'cuda'
}

export type RocmStatus = Availability & {
  devices: number
  gpus: GpuDevice[]
  version?: string
  /** The onnxruntime provider the binding offers for AMD GPUs, if any. */
  provider?: 'migraphx' | 'rocm'
  provider_installed: boolean
}

export type OpenvinoStatus = Availability & {
  /** OpenVINO toolkit version (`"2023.1"`), when a toolkit was found. */
  version?: string
  toolkit_dir?: string
  provider_installed: boolean
  provider: 'openvino'
}

export type MpsStatus = Availability & {
  /** Apple chip name (`"Apple M2"`), on macOS. */
  chip?: string
  /** onnxruntime-node has no MPS provider: Apple GPUs and the Neural Engine are reached through CoreML. */
  provider: 'coreml'
  provider_installed: boolean
}

export type QualcommStatus = Availability & {
  soc?: string
  provider_installed: boolean
  provider: 'qnn'
}

export type WebnnStatus = Availability & {
  provider: 'webnn'
}

export type WebgpuStatus = Availability & {
  /** How availability was established: a real onnxruntime session, or `navigator.gpu.requestAdapter()`. */
  probe?: 'onnxruntime-session' | 'navigator.gpu'
  provider: 'webgpu'
}

/** What `HardwareDetection.detectAllHardware()` returns: every backend key, always. */
export interface HardwareReport {
  cpu: CpuStatus
  cuda: CudaStatus
  openvino: OpenvinoStatus
  mps: MpsStatus
  rocm: RocmStatus
  qualcomm: QualcommStatus
  webnn: WebnnStatus
  webgpu: WebgpuStatus
}

/** Builds an Availability from a list of blocking problems: available when there are none. */
export function availability (problems: readonly string[]): Availability {
  return problems.length === 0 ? { available: true } : { available: false, reason: problems.join('; ') }
}

const GIB = 2 ** 30
const MIB = 2 ** 20

/**
 * Formats a memory size the way GPU and RAM vendors name it: whole "GB" that are really GiB (an
 * 8192 MiB card is sold as "8GB"), or "MB" below one GiB. `memory_bytes` carries the exact figure.
 */
export function formatMemory (bytes: number): string {
  if (bytes >= GIB) return `${Math.round(bytes / GIB)}GB`
  return `${Math.round(bytes / MIB)}MB`
}

/** Hardware probes, the hardware report, device/dtype selection and the memory budget. */
export { HardwareDetection, type HardwareDetectionInit } from './hardware-detection.js'
export {
  BACKEND_KEYS, formatMemory,
  type BackendKey, type Availability, type GpuDevice, type HardwareReport, type CpuStatus, type CudaStatus,
  type RocmStatus, type OpenvinoStatus, type MpsStatus, type QualcommStatus, type WebnnStatus, type WebgpuStatus
} from './hardware-report.js'
export { systemProbeEnvironment, type ProbeEnvironment, type ExecResult, type OrtBackendInfo, type ProbeNavigator } from './probe-environment.js'
export { DEFAULT_PROBE_TIMEOUTS, type ProbeTimeouts } from './probe-context.js'
export {
  selectExecution, backendOrder, fallbackLevel,
  type ExecutionChoice, type ExecutionFallback, type ModelRequest, type TransformersDevice
} from './select-execution.js'
export {
  availableDtypes, estimateModelBytes, weightFilePath, dtypeOfFile, DTYPES, DTYPE_SUFFIXES, DEFAULT_ONNX_SUBFOLDER,
  type Dtype, type ModelFilesOptions
} from './model-files.js'
export { MemoryBudget } from './memory-budget.js'
export { CUDA_INSTALL_HINT } from './probes/cuda-probe.js'

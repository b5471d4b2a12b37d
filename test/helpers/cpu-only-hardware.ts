/** Test helper: the hardware report of a machine with only a CPU (no probes run). */
import type { HardwareReport } from '../../src/hardware/index.js'

export function cpuOnly (): HardwareReport {
  const unavailable = { available: false as const }
  return {
    cpu: { available: true, cores: 2, model: 'Test CPU', arch: 'x64', memory_total: '16GB', memory_total_bytes: 16 * 2 ** 30, simd: {}, provider: 'cpu' },
    cuda: { ...unavailable, reason: 'no NVIDIA GPU found', devices: 0, gpus: [], provider_installed: false, provider: 'cuda' },
    openvino: { ...unavailable, reason: 'no OpenVINO toolkit found', provider_installed: false, provider: 'openvino' },
    mps: { ...unavailable, reason: 'needs macOS on Apple silicon', provider: 'coreml', provider_installed: false },
    rocm: { ...unavailable, reason: '/dev/kfd is absent', devices: 0, gpus: [], provider_installed: false },
    qualcomm: { ...unavailable, reason: 'needs arm64', provider_installed: false, provider: 'qnn' },
    webnn: { ...unavailable, reason: 'browsers only', provider: 'webnn' },
    webgpu: { ...unavailable, reason: 'no adapter', provider: 'webgpu', probe: 'onnxruntime-session' }
  }
}

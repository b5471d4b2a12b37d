import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { HardwareDetection } from '../../../src/hardware/index.js'
import { parseNvidiaDriverVersion, parseNvidiaGpuInformation, parseNvidiaSmi } from '../../../src/hardware/probes/cuda-probe.js'
import { FakeSystem } from '../fake-system.js'

// Recorded from `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits`.
const TWO_GPUS = 'NVIDIA GeForce RTX 4090, 24564, 550.54.15\nNVIDIA GeForce RTX 3060, 12288, 550.54.15'
const PROC_VERSION = 'NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build  (dvs-builder@U16-I3-B03-4-3)  Tue Mar  5 22:15:33 UTC 2024\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n'
const PROC_GPU = (model: string, minor: number): string =>
  `Model: \t\t ${model}\nIRQ:   \t\t 155\nGPU UUID: \t GPU-5a1c3f1e-0000-0000-0000-000000000000\nVideo BIOS: \t 95.02.18.80.5f\nBus Type: \t PCIe\nDMA Size: \t 47 bits\nDMA Mask: \t 0x7fffffffffff\nBus Location: \t 0000:0${minor + 1}:00.0\nDevice Minor: \t ${minor}\nGPU Excluded:\t No\n`

describe('CUDA probe', () => {
  let sys: FakeSystem
  before(async () => { sys = await FakeSystem.create() })
  after(async () => { await sys.cleanup() })

  it('parses nvidia-smi CSV, including boards without a memory figure', () => {
    assert.deepEqual(parseNvidiaSmi(`${TWO_GPUS}\n`), [
      { index: 0, name: 'NVIDIA GeForce RTX 4090', memory: '24GB', memory_bytes: 24564 * 2 ** 20, driver: '550.54.15' },
      { index: 1, name: 'NVIDIA GeForce RTX 3060', memory: '12GB', memory_bytes: 12288 * 2 ** 20, driver: '550.54.15' }
    ])
    assert.deepEqual(parseNvidiaSmi('NVIDIA GH200 480GB, [N/A], 560.35.03'), [{ index: 0, name: 'NVIDIA GH200 480GB', driver: '560.35.03' }])
  })

  it('parses the driver files under /proc/driver/nvidia', () => {
    assert.equal(parseNvidiaDriverVersion(PROC_VERSION), '550.54.15')
    assert.equal(parseNvidiaDriverVersion('NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023'), '535.104.05')
    assert.deepEqual(parseNvidiaGpuInformation(PROC_GPU('NVIDIA A100-SXM4-80GB', 3)), { name: 'NVIDIA A100-SXM4-80GB', minor: 3 })
  })

  it('reports two GPUs from nvidia-smi but unavailable without the CUDA provider libraries, saying how to install them', async () => {
    await sys.printingTool('nvidia-smi', TWO_GPUS)
    const cuda = new HardwareDetection({ environment: sys.environment() }).detectAllHardware().cuda
    assert.equal(cuda.available, false)
    assert.equal(cuda.devices, 2)
    assert.equal(cuda.memory, '24GB')
    assert.equal(cuda.driver_version, '550.54.15')
    assert.equal(cuda.source, 'nvidia-smi')
    assert.equal(cuda.gpus[1].name, 'NVIDIA GeForce RTX 3060')
    assert.equal(cuda.provider_installed, false)
    assert.match(cuda.reason ?? '', /2 NVIDIA GPUs found/)
    assert.match(cuda.reason ?? '', /libonnxruntime_providers_cuda\.so and libonnxruntime_providers_shared\.so are missing/)
    assert.match(cuda.reason ?? '', /ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci/)
  })

  it('reports CUDA available when the provider is installed and the session probe succeeds', async () => {
    await sys.printingTool('nvidia-smi', TWO_GPUS)
    await sys.ortFile('libonnxruntime_providers_cuda.so')
    await sys.ortFile('libonnxruntime_providers_shared.so')
    // The session probe's child process, replaced by a recorded successful answer.
    const node = await sys.printingTool('fake-node', '{"ok":true}')
    const report = new HardwareDetection({ environment: sys.environment({ nodePath: node }) }).detectAllHardware()
    assert.equal(report.cuda.available, true)
    assert.equal(report.cuda.reason, undefined)
    assert.equal(report.cuda.provider_installed, true)
    assert.equal(report.cuda.devices, 2)
  })

  it('reports the real onnxruntime error when the provider file is there but a session cannot start', async () => {
    await sys.printingTool('nvidia-smi', TWO_GPUS)
    await sys.ortFile('libonnxruntime_providers_cuda.so')
    await sys.ortFile('libonnxruntime_providers_shared.so')
    // The real node and the real onnxruntime-node binding: its CUDA libraries are not installed here.
    const cuda = new HardwareDetection({ environment: sys.environment() }).detectAllHardware().cuda
    assert.equal(cuda.available, false)
    assert.equal(cuda.provider_installed, true)
    assert.match(cuda.reason ?? '', /a test session failed: .+/)
  })

  it('falls back to /proc/driver/nvidia when nvidia-smi fails, keeping its error', async () => {
    await sys.printingTool('nvidia-smi', "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", 9)
    await sys.file('/proc/driver/nvidia/version', PROC_VERSION)
    await sys.file('/proc/driver/nvidia/gpus/0000:02:00.0/information', PROC_GPU('NVIDIA A100-SXM4-80GB', 1))
    await sys.file('/proc/driver/nvidia/gpus/0000:01:00.0/information', PROC_GPU('NVIDIA A100-SXM4-40GB', 0))
    const cuda = new HardwareDetection({ environment: sys.environment() }).detectAllHardware().cuda
    assert.equal(cuda.source, 'procfs')
    assert.equal(cuda.devices, 2)
    assert.deepEqual(cuda.gpus.map(g => [g.index, g.name, g.driver]), [
      [0, 'NVIDIA A100-SXM4-40GB', '550.54.15'],
      [1, 'NVIDIA A100-SXM4-80GB', '550.54.15']
    ])
    assert.equal(cuda.memory, undefined)
    assert.match(cuda.nvidia_smi_error ?? '', /status 9: NVIDIA-SMI has failed/)
    assert.equal(cuda.available, false)
  })

  it('times out a hanging nvidia-smi and says so', async () => {
    const hanging = await FakeSystem.create()
    try {
      await hanging.tool('nvidia-smi', 'exec /bin/sleep 30')
      const cuda = new HardwareDetection({ environment: hanging.environment(), timeouts: { commandMs: 300 } }).detectAllHardware().cuda
      assert.equal(cuda.available, false)
      assert.equal(cuda.devices, 0)
      assert.match(cuda.reason ?? '', /nvidia-smi did not answer within 300 ms/)
      const viaAsync = await new HardwareDetection({ environment: hanging.environment(), timeouts: { commandMs: 300 } }).detectAllHardwareAsync()
      assert.match(viaAsync.cuda.reason ?? '', /nvidia-smi did not answer within 300 ms/)
    } finally {
      await hanging.cleanup()
    }
  })

  it('says when neither nvidia-smi nor the driver files exist', async () => {
    const empty = await FakeSystem.create()
    try {
      const cuda = new HardwareDetection({ environment: empty.environment() }).detectAllHardware().cuda
      assert.equal(cuda.available, false)
      assert.match(cuda.reason ?? '', /no NVIDIA GPU found \(nvidia-smi not found on PATH; \/proc\/driver\/nvidia\/gpus lists none\)/)
    } finally {
      await empty.cleanup()
    }
  })

  it('names the platform when onnxruntime-node offers no CUDA provider there', async () => {
    const cuda = new HardwareDetection({ environment: sys.environment({ platform: 'darwin', arch: 'arm64' }) }).detectAllHardware().cuda
    assert.equal(cuda.available, false)
    assert.match(cuda.reason ?? '', /darwin\/arm64/)
  })
})

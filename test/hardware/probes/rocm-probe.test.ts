import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { HardwareDetection } from '../../../src/hardware/index.js'
import { parseRocmSmi } from '../../../src/hardware/probes/rocm-probe.js'
import { FakeSystem } from '../fake-system.js'

// Shape of `rocm-smi --showproductname --showmeminfo vram --json` (ROCm 6), with its leading warning line.
const ROCM_SMI = 'WARNING: AMD GPU device(s) is/are in a low-power state. Check power control/runtime_status\n' + JSON.stringify({
  card0: { 'VRAM Total Memory (B)': '68702699520', 'VRAM Total Used Memory (B)': '10960896', 'Card Series': 'AMD Instinct MI210', 'Card Model': '0x740f', 'GFX Version': 'gfx90a' },
  card1: { 'VRAM Total Memory (B)': '68702699520', 'VRAM Total Used Memory (B)': '10960896', 'Card series': 'AMD Instinct MI210', 'GFX Version': 'gfx90a' }
})

describe('ROCm probe', () => {
  let sys: FakeSystem
  before(async () => { sys = await FakeSystem.create() })
  after(async () => { await sys.cleanup() })

  it('parses rocm-smi JSON whatever the key casing', () => {
    assert.deepEqual(parseRocmSmi(ROCM_SMI).map(g => [g.index, g.name, g.memory]), [[0, 'AMD Instinct MI210', '64GB'], [1, 'AMD Instinct MI210', '64GB']])
    assert.deepEqual(parseRocmSmi('not json'), [])
  })

  it('reports no device when /dev/kfd is absent', () => {
    const rocm = new HardwareDetection({ environment: sys.environment() }).detectAllHardware().rocm
    assert.equal(rocm.available, false)
    assert.match(rocm.reason ?? '', /\/dev\/kfd is absent/)
  })

  it('finds AMD GPUs through rocm-smi, and explains that onnxruntime-node has no MIGraphX/ROCm provider', async () => {
    await sys.file('/dev/kfd')
    await sys.file('/opt/rocm/.info/version', '6.1.2-119\n')
    await sys.printingTool('rocm-smi', ROCM_SMI)
    const rocm = new HardwareDetection({ environment: sys.environment() }).detectAllHardware().rocm
    assert.equal(rocm.available, false)
    assert.equal(rocm.devices, 2)
    assert.equal(rocm.version, '6.1.2-119')
    assert.equal(rocm.gpus[0].memory, '64GB')
    assert.equal(rocm.provider, undefined)
    assert.match(rocm.reason ?? '', /2 AMD GPUs found, but this onnxruntime-node build \(linux\/x64\) has no MIGraphX or ROCm execution provider/)
    assert.match(rocm.reason ?? '', /--use_migraphx/)
  })

  it('falls back to the KFD topology when rocm-smi is missing', async () => {
    const kfd = await FakeSystem.create()
    try {
      await kfd.file('/dev/kfd')
      await kfd.file('/sys/class/kfd/kfd/topology/nodes/0/properties', 'cpu_cores_count 64\nsimd_count 0\n')
      await kfd.file('/sys/class/kfd/kfd/topology/nodes/0/name', '\n')
      await kfd.file('/sys/class/kfd/kfd/topology/nodes/1/properties', 'cpu_cores_count 0\nsimd_count 416\n')
      await kfd.file('/sys/class/kfd/kfd/topology/nodes/1/name', 'gfx90a\n')
      const rocm = new HardwareDetection({ environment: kfd.environment(undefined, [{ name: 'cpu', bundled: true }, { name: 'migraphx', bundled: true }]) }).detectAllHardware().rocm
      assert.deepEqual(rocm.gpus, [{ index: 0, name: 'gfx90a' }])
      assert.equal(rocm.provider, 'migraphx')
      assert.equal(rocm.available, false)
      assert.match(rocm.reason ?? '', /libonnxruntime_providers_migraphx\.so is missing/)
    } finally {
      await kfd.cleanup()
    }
  })
})

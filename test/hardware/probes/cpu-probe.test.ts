import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { HardwareDetection } from '../../../src/hardware/index.js'
import { parseCpuinfoSimd } from '../../../src/hardware/probes/cpu-probe.js'
import { FakeSystem } from '../fake-system.js'

const X86_CPUINFO = 'processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n' +
  'flags\t\t: fpu vme sse4_2 avx f16c fma avx2 avx512f avx512bw avx512vl avx512_vnni avx512_bf16 amx_tile amx_int8\n'
const ARM_CPUINFO = 'processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp asimddp i8mm bf16\nCPU implementer\t: 0x41\n'

describe('CPU probe', () => {
  let sys: FakeSystem
  before(async () => { sys = await FakeSystem.create() })
  after(async () => { await sys.cleanup() })

  it('reads x86 SIMD flags from /proc/cpuinfo', () => {
    const simd = parseCpuinfoSimd(X86_CPUINFO, 'x64')
    assert.equal(simd.avx2, true)
    assert.equal(simd.avx512f, true)
    assert.equal(simd.amx_int8, true)
    assert.equal(simd.avx_vnni, false)
  })

  it('reads Arm features as neon/dotprod/i8mm', () => {
    assert.deepEqual(parseCpuinfoSimd(ARM_CPUINFO, 'arm64'), { neon: true, fp16: true, dotprod: true, i8mm: true, bf16: true, sve: false, sve2: false })
  })

  it('reports cores, model, memory and SIMD from the environment', async () => {
    await sys.file('/proc/cpuinfo', X86_CPUINFO)
    const cpu = new HardwareDetection({
      environment: sys.environment({ availableParallelism: 8, totalMemory: 16 * 2 ** 30, cpus: () => [{ model: 'Intel(R) Xeon(R) Platinum 8480+', speed: 2000, times: { user: 0, nice: 0, sys: 0, idle: 0, irq: 0 } }] })
    }).detectAllHardware().cpu
    assert.equal(cpu.available, true)
    assert.equal(cpu.cores, 8)
    assert.equal(cpu.model, 'Intel(R) Xeon(R) Platinum 8480+')
    assert.equal(cpu.memory_total, '16GB')
    assert.equal(cpu.simd.avx512f, true)
  })

  it('lowers cores to a container\'s cgroup CPU quota (v2, the lowest along the path; v1), and reports the quota', async () => {
    const cores = async (files: Record<string, string>): Promise<{ cores: number, quota?: number }> => {
      const machine = await FakeSystem.create()
      try {
        for (const [file, text] of Object.entries(files)) await machine.file(file, text)
        const cpu = new HardwareDetection({ environment: machine.environment({ availableParallelism: 64 }) }).detectAllHardware().cpu
        return { cores: cpu.cores, quota: cpu.cpu_quota }
      } finally {
        await machine.cleanup()
      }
    }
    // docker --cpus=2 (cgroup v2, the container's namespace: its own cgroup is the root)
    assert.deepEqual(await cores({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': '200000 100000\n' }), { cores: 2, quota: 2 })
    // a nested cgroup: the lowest limit along the path counts
    assert.deepEqual(await cores({
      '/proc/self/cgroup': '0::/kubepods/pod1/ctr\n',
      '/sys/fs/cgroup/cpu.max': 'max 100000\n',
      '/sys/fs/cgroup/kubepods/cpu.max': '800000 100000\n',
      '/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max': '150000 100000\n'
    }), { cores: 1, quota: 1.5 })
    // cgroup v1
    assert.deepEqual(await cores({
      '/proc/self/cgroup': '4:cpu,cpuacct:/docker/abc\n',
      '/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '400000\n',
      '/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n'
    }), { cores: 4, quota: 4 })
    // no limit (max, -1) or nothing readable: all the cores
    assert.deepEqual(await cores({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': 'max 100000\n' }), { cores: 64, quota: undefined })
    assert.deepEqual(await cores({ '/proc/self/cgroup': '1:cpu:/\n', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' }), { cores: 64, quota: undefined })
    assert.deepEqual(await cores({}), { cores: 64, quota: undefined })
    // a quota above the cores the process may run on changes nothing
    assert.deepEqual(await cores({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': '12800000 100000\n' }), { cores: 64, quota: 128 })
  })

  it('is unavailable, with the reason, when the onnxruntime binding cannot load', () => {
    const report = new HardwareDetection({
      environment: sys.environment({ ortBackends: () => { throw new Error('libonnxruntime.so.1: cannot open shared object file') } })
    }).detectAllHardware()
    assert.equal(report.cpu.available, false)
    assert.match(report.cpu.reason ?? '', /onnxruntime-node could not be loaded: libonnxruntime\.so\.1/)
  })
})

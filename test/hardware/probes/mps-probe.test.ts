import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { HardwareDetection } from '../../../src/hardware/index.js'
import { FakeSystem } from '../fake-system.js'

describe('MPS (CoreML) probe', () => {
  let sys: FakeSystem
  before(async () => { sys = await FakeSystem.create() })
  after(async () => { await sys.cleanup() })

  it('needs macOS on Apple silicon', () => {
    const mps = new HardwareDetection({ environment: sys.environment() }).detectAllHardware().mps
    assert.equal(mps.available, false)
    assert.match(mps.reason ?? '', /macOS on Apple silicon \(this is linux\/x64\)/)
  })

  it('on darwin/arm64 reads the chip through sysctl and starts a CoreML session', async () => {
    await sys.tool('sysctl', [
      'case "$2" in',
      "  machdep.cpu.brand_string) printf 'Apple M2 Pro\\n' ;;",
      "  hw.optional.arm.FEAT_DotProd) printf '1\\n1\\n0\\n' ;;",
      '  *) exit 1 ;;',
      'esac'
    ].join('\n'))
    const node = await sys.printingTool('fake-node', '{"ok":true}')
    const report = new HardwareDetection({
      environment: sys.environment({ platform: 'darwin', arch: 'arm64', nodePath: node }, [{ name: 'cpu', bundled: true }, { name: 'coreml', bundled: true }])
    }).detectAllHardware()
    assert.equal(report.mps.available, true)
    assert.equal(report.mps.chip, 'Apple M2 Pro')
    assert.equal(report.mps.provider, 'coreml')
    assert.deepEqual(report.cpu.simd, { neon: true, dotprod: true, i8mm: true, bf16: false })
  })

  it('reports the CoreML error when the session fails', async () => {
    const node = await sys.printingTool('failing-node', '{"ok":false,"error":"CoreML: model compilation failed"}')
    const mps = new HardwareDetection({
      environment: sys.environment({ platform: 'darwin', arch: 'arm64', nodePath: node }, [{ name: 'cpu', bundled: true }, { name: 'coreml', bundled: true }])
    }).detectAllHardware().mps
    assert.equal(mps.available, false)
    assert.match(mps.reason ?? '', /a test session on CoreML failed: CoreML: model compilation failed/)
  })
})

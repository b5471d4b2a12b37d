import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { HardwareDetection } from '../../../src/hardware/index.js'
import { FakeSystem } from '../fake-system.js'

describe('WebGPU probe', () => {
  let sys: FakeSystem
  before(async () => { sys = await FakeSystem.create() })
  after(async () => { await sys.cleanup() })

  it('creates a real onnxruntime session on the webgpu provider and reports the outcome', () => {
    // The real binding and a real child process: on a machine without a GPU adapter this says why.
    const webgpu = new HardwareDetection().detectAllHardware().webgpu
    assert.equal(webgpu.probe, 'onnxruntime-session')
    if (webgpu.available) assert.equal(webgpu.reason, undefined)
    else assert.match(webgpu.reason, /WebGPU provider could not start: .+/)
  })

  it('says when the binding has no webgpu provider', () => {
    const webgpu = new HardwareDetection({ environment: sys.environment() }).detectAllHardware().webgpu
    assert.equal(webgpu.available, false)
    assert.match(webgpu.reason ?? '', /no WebGPU execution provider \(it offers: cpu, cuda\)/)
  })

  it('kills a session probe that hangs', async () => {
    const node = await sys.tool('hanging-node', 'exec /bin/sleep 30')
    const webgpu = new HardwareDetection({
      environment: sys.environment({ nodePath: node }, [{ name: 'cpu', bundled: true }, { name: 'webgpu', bundled: true }]),
      timeouts: { sessionMs: 300 }
    }).detectAllHardware().webgpu
    assert.equal(webgpu.available, false)
    assert.match(webgpu.reason ?? '', /did not finish within 300 ms/)
  })

  it('uses navigator.gpu where the runtime has one (asynchronously)', async () => {
    const env = sys.environment({ navigator: { gpu: { requestAdapter: async () => null } } }, [{ name: 'cpu', bundled: true }])
    const sync = new HardwareDetection({ environment: env }).detectAllHardware().webgpu
    assert.equal(sync.available, false)
    assert.match(sync.reason ?? '', /only be checked asynchronously/)
    const none = (await new HardwareDetection({ environment: env }).detectAllHardwareAsync()).webgpu
    assert.equal(none.available, false)
    assert.match(none.reason ?? '', /returned no adapter/)
    const some = (await new HardwareDetection({
      environment: { ...env, navigator: { gpu: { requestAdapter: async () => ({}) } } }
    }).detectAllHardwareAsync()).webgpu
    assert.equal(some.available, true)
    assert.equal(some.probe, 'navigator.gpu')
  })
})

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { HardwareDetection } from '../../../src/hardware/index.js'
import { parseOpenvinoVersion } from '../../../src/hardware/probes/openvino-probe.js'
import { FakeSystem } from '../fake-system.js'

describe('OpenVINO probe', () => {
  let sys: FakeSystem
  before(async () => { sys = await FakeSystem.create() })
  after(async () => { await sys.cleanup() })

  it('reads the version from the CMake version file or the folder name', () => {
    assert.equal(parseOpenvinoVersion('set(PACKAGE_VERSION "2023.1.0")\n', '/opt/x'), '2023.1')
    assert.equal(parseOpenvinoVersion(undefined, '/opt/intel/openvino_2024.4.0'), '2024.4')
    assert.equal(parseOpenvinoVersion(undefined, '/opt/somewhere'), undefined)
  })

  it('reports neither toolkit nor provider on a bare machine', () => {
    const openvino = new HardwareDetection({ environment: sys.environment() }).detectAllHardware().openvino
    assert.equal(openvino.available, false)
    assert.match(openvino.reason ?? '', /no OpenVINO toolkit found/)
    assert.match(openvino.reason ?? '', /no OpenVINO execution provider/)
  })

  it('finds the toolkit named by INTEL_OPENVINO_DIR and its version, still without an onnxruntime provider', async () => {
    await sys.file('/opt/intel/openvino_2023.1.0/runtime/cmake/OpenVINOConfig-version.cmake', 'set(PACKAGE_VERSION "2023.1.0")\n')
    const openvino = new HardwareDetection({
      environment: sys.environment({ env: { PATH: sys.bin, INTEL_OPENVINO_DIR: '/opt/intel/openvino_2023.1.0' } })
    }).detectAllHardware().openvino
    assert.equal(openvino.version, '2023.1')
    assert.equal(openvino.toolkit_dir, '/opt/intel/openvino_2023.1.0')
    assert.equal(openvino.available, false)
    assert.doesNotMatch(openvino.reason ?? '', /no OpenVINO toolkit/)
    assert.match(openvino.reason ?? '', /--use_openvino/)
  })

  it('is available when a custom binding has the provider and a session starts', async () => {
    await sys.ortFile('libonnxruntime_providers_openvino.so')
    const node = await sys.printingTool('fake-node', '{"ok":true}')
    const openvino = new HardwareDetection({
      environment: sys.environment({ nodePath: node }, [{ name: 'cpu', bundled: true }, { name: 'openvino', bundled: true }])
    }).detectAllHardware().openvino
    assert.equal(openvino.available, true)
    assert.equal(openvino.version, '2023.1')
    assert.equal(openvino.provider_installed, true)
  })
})

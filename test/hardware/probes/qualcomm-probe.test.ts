import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { HardwareDetection } from '../../../src/hardware/index.js'
import { parseQualcommSoc } from '../../../src/hardware/probes/qualcomm-probe.js'
import { FakeSystem } from '../fake-system.js'

describe('Qualcomm probe', () => {
  const systems: FakeSystem[] = []
  after(async () => { await Promise.all(systems.map(async s => { await s.cleanup() })) })

  it('finds the SoC in /proc/cpuinfo, the device tree or a CPU model name', () => {
    assert.equal(parseQualcommSoc('processor\t: 0\nHardware\t: Qualcomm Technologies, Inc SM8550\n'), 'Qualcomm Technologies, Inc SM8550')
    assert.equal(parseQualcommSoc(undefined, 'Qualcomm Technologies, Inc. Robotics RB5\0'), 'Qualcomm Technologies, Inc. Robotics RB5')
    assert.equal(parseQualcommSoc('Hardware\t: BCM2835\n', undefined, 'Snapdragon(R) X Elite - X1E78100 - Qualcomm(R) Oryon(TM) CPU'), 'Snapdragon(R) X Elite - X1E78100 - Qualcomm(R) Oryon(TM) CPU')
    assert.equal(parseQualcommSoc('Hardware\t: BCM2835\n'), undefined)
  })

  it('is off the table on x64', async () => {
    const sys = await FakeSystem.create()
    systems.push(sys)
    const q = new HardwareDetection({ environment: sys.environment() }).detectAllHardware().qualcomm
    assert.equal(q.available, false)
    assert.match(q.reason ?? '', /arm64 Windows or Linux \(this is linux\/x64\)/)
  })

  it('reports a Snapdragon on arm64 Linux, unavailable without the QNN provider', async () => {
    const sys = await FakeSystem.create()
    systems.push(sys)
    await sys.file('/proc/cpuinfo', 'processor\t: 0\nFeatures\t: fp asimd\nHardware\t: Qualcomm Technologies, Inc SM8550\n')
    const report = new HardwareDetection({ environment: sys.environment({ arch: 'arm64' }, [{ name: 'cpu', bundled: true }]) }).detectAllHardware()
    assert.equal(report.qualcomm.soc, 'Qualcomm Technologies, Inc SM8550')
    assert.equal(report.qualcomm.available, false)
    assert.match(report.qualcomm.reason ?? '', /no QNN execution provider/)
    assert.equal(report.cpu.simd.neon, true)
  })
})

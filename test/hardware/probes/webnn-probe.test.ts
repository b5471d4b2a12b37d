import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { HardwareDetection } from '../../../src/hardware/index.js'

describe('WebNN probe', () => {
  it('is unavailable in Node, with a reason', () => {
    const webnn = new HardwareDetection().detectAllHardware().webnn
    assert.equal(webnn.available, false)
    assert.match(webnn.reason ?? '', /navigator\.ml/)
  })

  it('creates an ML context where navigator.ml exists', async () => {
    const ok = await new HardwareDetection({ environment: { navigator: { ml: { createContext: async () => ({}) } }, ortBackends: () => [] } }).detectAllHardwareAsync()
    assert.equal(ok.webnn.available, true)
    const failing = await new HardwareDetection({
      environment: { navigator: { ml: { createContext: async () => { throw new Error('NotSupportedError') } } }, ortBackends: () => [] }
    }).detectAllHardwareAsync()
    assert.equal(failing.webnn.available, false)
    assert.match(failing.webnn.reason ?? '', /navigator\.ml\.createContext\(\) failed: NotSupportedError/)
  })
})

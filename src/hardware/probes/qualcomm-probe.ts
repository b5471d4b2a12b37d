/**
 * Qualcomm NPUs (Snapdragon Hexagon) through onnxruntime's QNN provider. Needs an arm64 Windows or Linux
 * machine with a Qualcomm SoC, the QNN provider in the onnxruntime binding and the QNN HTP backend library
 * (`QnnHtp.dll` / `libQnnHtp.so`) next to it or in `QNN_SDK_ROOT`. onnxruntime-node's published binaries
 * do not include QNN, so a stock install reports the SoC with available false.
 */
import { availability, type QualcommStatus } from '../hardware-report.js'
import { missingBackendReason, ortFileExists, ortHasBackend, pathExists, readText, type Probe, type ProbeContext } from '../probe-context.js'
import { probeSession } from '../session-probe.js'

/** Finds a Qualcomm SoC name in `/proc/cpuinfo`'s `Hardware` line, a device-tree model, or a CPU model string. */
export function parseQualcommSoc (...texts: Array<string | undefined>): string | undefined {
  for (const text of texts) {
    if (text === undefined) continue
    const hardware = /^Hardware\s*:\s*(.+)$/m.exec(text)?.[1]
    const candidate = (hardware ?? text).replace(/\0/g, '').trim()
    if (/qualcomm|snapdragon|\bqcom\b/i.test(candidate)) return candidate.split('\n')[0].trim()
  }
  return undefined
}

export function * probeQualcomm (ctx: ProbeContext): Probe<QualcommStatus> {
  const { env } = ctx
  const htpLib = env.platform === 'win32' ? 'QnnHtp.dll' : 'libQnnHtp.so'
  const sdkRoot = env.env.QNN_SDK_ROOT
  const htpPresent = ortFileExists(ctx, htpLib) ||
    (sdkRoot !== undefined && sdkRoot !== '' && ['aarch64-windows-msvc', 'aarch64-ubuntu-gcc9.4', 'aarch64-oe-linux-gcc11.2']
      .some(d => pathExists(ctx, `${sdkRoot}/lib/${d}/${htpLib}`)))
  const providerInstalled = ortHasBackend(ctx, 'qnn') && htpPresent
  const base = { provider: 'qnn' as const, provider_installed: providerInstalled }
  if (env.arch !== 'arm64' || (env.platform !== 'win32' && env.platform !== 'linux')) {
    return { ...base, available: false, reason: `Qualcomm NPUs need arm64 Windows or Linux (this is ${env.platform}/${env.arch})` }
  }
  const soc = parseQualcommSoc(
    env.platform === 'linux' ? readText(ctx, '/proc/cpuinfo') : undefined,
    env.platform === 'linux' ? readText(ctx, '/sys/firmware/devicetree/base/model') : undefined,
    env.cpus()[0]?.model
  )
  const details = { ...base, ...(soc === undefined ? {} : { soc }) }
  const problems: string[] = []
  if (soc === undefined) problems.push('no Qualcomm SoC found (neither /proc/cpuinfo, the device tree nor the CPU model name mention Qualcomm or Snapdragon)')
  if (!ortHasBackend(ctx, 'qnn')) problems.push(`${missingBackendReason(ctx, 'qnn', 'QNN')}; build onnxruntime-node with --use_qnn to use it`)
  else if (!htpPresent) problems.push(`the QNN HTP backend (${htpLib}) is neither next to onnxruntime-node nor under QNN_SDK_ROOT`)
  if (problems.length > 0) return { ...details, ...availability(problems) }
  const session = yield * probeSession(ctx, 'qnn')
  return { ...details, ...availability(session.ok ? [] : [`a test session on QNN failed: ${session.error ?? 'unknown error'}`]) }
}

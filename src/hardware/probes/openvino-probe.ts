/**
 * Intel OpenVINO. Two parts: the OpenVINO toolkit (found through `INTEL_OPENVINO_DIR`, which its
 * `setupvars` script sets, or an install under `/opt/intel`), and onnxruntime's OpenVINO execution
 * provider. onnxruntime-node's published binaries do not include that provider, so a stock install
 * reports the toolkit's version with available false and says what is missing.
 */
import { availability, type OpenvinoStatus } from '../hardware-report.js'
import {
  listDir, missingBackendReason, ortFileExists, ortHasBackend, providerLibraryName, readText,
  type Probe, type ProbeContext
} from '../probe-context.js'
import { probeSession } from '../session-probe.js'

/**
 * The toolkit version, from the CMake package version file every OpenVINO install carries, or else from
 * the install folder's name (`openvino_2023.1.0`). Returned as major.minor (`"2023.1"`), the way Intel
 * names releases.
 */
export function parseOpenvinoVersion (cmakeVersionFile: string | undefined, dir: string): string | undefined {
  const full = (cmakeVersionFile === undefined ? undefined : /PACKAGE_VERSION\s+"?(\d+\.\d+(?:\.\d+)*)/.exec(cmakeVersionFile)?.[1]) ??
    /openvino[_-]?(?:toolkit[_-])?(\d{4}\.\d+(?:\.\d+)*)/i.exec(dir)?.[1]
  if (full === undefined) return undefined
  return full.split('.').slice(0, 2).join('.')
}

function findToolkit (ctx: ProbeContext): { dir: string, version?: string } | undefined {
  const candidates: string[] = []
  const fromEnv = ctx.env.env.INTEL_OPENVINO_DIR
  if (fromEnv !== undefined && fromEnv !== '') candidates.push(fromEnv)
  if (ctx.env.platform === 'linux') {
    // Newest first: `openvino_2024.0.0` sorts after `openvino_2023.3.0`.
    for (const d of listDir(ctx, '/opt/intel').filter(d => d.startsWith('openvino')).reverse()) candidates.push(`/opt/intel/${d}`)
  }
  for (const dir of candidates) {
    const cmake = readText(ctx, `${dir}/runtime/cmake/OpenVINOConfig-version.cmake`)
    const hasRuntime = cmake !== undefined || listDir(ctx, `${dir}/runtime`).length > 0
    if (!hasRuntime) continue
    const version = parseOpenvinoVersion(cmake, dir)
    return { dir, ...(version === undefined ? {} : { version }) }
  }
  return undefined
}

export function * probeOpenvino (ctx: ProbeContext): Probe<OpenvinoStatus> {
  const { env } = ctx
  const libName = providerLibraryName(env.platform, 'openvino')
  const providerInstalled = ortHasBackend(ctx, 'openvino') && ortFileExists(ctx, libName)
  const toolkit = findToolkit(ctx)
  const details = {
    provider_installed: providerInstalled,
    provider: 'openvino' as const,
    ...(toolkit === undefined ? {} : { toolkit_dir: toolkit.dir }),
    ...(toolkit?.version === undefined ? {} : { version: toolkit.version })
  }
  const problems: string[] = []
  if (toolkit === undefined) problems.push('no OpenVINO toolkit found (INTEL_OPENVINO_DIR is unset and /opt/intel holds no openvino install; run its setupvars script)')
  if (!ortHasBackend(ctx, 'openvino')) {
    problems.push(`${missingBackendReason(ctx, 'openvino', 'OpenVINO')}; build onnxruntime-node from source with --use_openvino to use it`)
  } else if (!providerInstalled) {
    problems.push(`${libName} is missing from ${env.ortBinaryDir ?? 'the onnxruntime-node binary folder'}`)
  }
  if (problems.length > 0) return { ...details, ...availability(problems) }
  const session = yield * probeSession(ctx, 'openvino')
  return { ...details, ...availability(session.ok ? [] : [`a test session on OpenVINO failed: ${session.error ?? 'unknown error'}`]) }
}

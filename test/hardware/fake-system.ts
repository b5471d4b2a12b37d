/**
 * A fake machine for probe tests: vendor tools as shell scripts on a temporary PATH, driver files under a
 * temporary filesystem root and an empty onnxruntime binary folder. Probes run for real against it.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import type { OrtBackendInfo, ProbeEnvironment } from '../../src/hardware/index.js'

export class FakeSystem {
  readonly bin: string
  readonly fsRoot: string
  readonly ortDir: string

  private constructor (readonly root: string) {
    this.bin = join(root, 'bin')
    this.fsRoot = join(root, 'root')
    this.ortDir = join(root, 'ort')
  }

  static async create (): Promise<FakeSystem> {
    const sys = new FakeSystem(await mkdtemp(join(tmpdir(), 'ipfs-accelerate-hw-')))
    await Promise.all([mkdir(sys.bin), mkdir(sys.fsRoot), mkdir(sys.ortDir)])
    return sys
  }

  /** Puts an executable `#!/bin/sh` script named `name` on the fake PATH; returns its path. */
  async tool (name: string, body: string): Promise<string> {
    const path = join(this.bin, name)
    await writeFile(path, `#!/bin/sh\n${body}\n`)
    await chmod(path, 0o755)
    return path
  }

  /** A tool that prints `stdout` and exits with `status`. Only shell builtins: PATH holds nothing else. */
  async printingTool (name: string, stdout: string, status = 0): Promise<string> {
    return await this.tool(name, `while IFS= read -r line; do printf '%s\\n' "$line"; done <<'__END__'\n${stdout}\n__END__\nexit ${status}`)
  }

  /** Writes a file at an absolute system path under the fake root. */
  async file (absolute: string, content = ''): Promise<void> {
    const path = join(this.fsRoot, absolute)
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, content)
  }

  /** Puts a (dummy) file next to the fake onnxruntime binding. */
  async ortFile (name: string): Promise<void> {
    await writeFile(join(this.ortDir, name), '')
  }

  /**
   * Probe environment for this machine: linux/x64, PATH = only the fake tools, an onnxruntime binding
   * offering `backends` (CPU and the separately downloaded CUDA by default; no WebGPU, so no session probe
   * runs unless a test asks for one) and no navigator.
   */
  environment (overrides: Partial<ProbeEnvironment> = {}, backends: OrtBackendInfo[] = [{ name: 'cpu', bundled: true }, { name: 'cuda', bundled: false }]): Partial<ProbeEnvironment> {
    return {
      platform: 'linux',
      arch: 'x64',
      env: { PATH: this.bin },
      fsRoot: this.fsRoot,
      ortBinaryDir: this.ortDir,
      ortBackends: () => backends,
      navigator: undefined,
      ...overrides
    }
  }

  async cleanup (): Promise<void> {
    await rm(this.root, { recursive: true, force: true })
  }
}

/** What a benchmark reports about where and how it ran. */
import { availableParallelism, cpus, totalmem, platform, arch } from 'node:os'
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface MachineInfo {
  date: string
  cores: number
  cpu: string
  memoryGiB: number
  node: string
  platform: string
}

export function machineInfo (): MachineInfo {
  return {
    date: new Date().toISOString().slice(0, 10),
    cores: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${platform()}-${arch()}`
  }
}

export function describeMachine (m: MachineInfo = machineInfo()): string {
  return `${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}`
}

/** The command that reproduces this run: `npx tsx bench/<file>.ts <args>`. */
export function commandLine (moduleUrl: string): string {
  const file = relative(process.cwd(), fileURLToPath(moduleUrl))
  return ['npx tsx', file, ...process.argv.slice(2)].join(' ')
}

/** Prints the heading every benchmark starts its report with. */
export function printHeader (title: string, moduleUrl: string, notes: string[] = []): void {
  const m = machineInfo()
  console.log(`## ${title}\n`)
  console.log(`- date: ${m.date}`)
  console.log(`- machine: ${describeMachine(m)}`)
  console.log(`- command: \`${commandLine(moduleUrl)}\``)
  for (const note of notes) console.log(`- ${note}`)
  console.log('')
}

/** Reads `--name value` or `--name=value` from argv. */
export function argValue (name: string): string | undefined {
  const args = process.argv.slice(2)
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) return args[i + 1]
    if (args[i].startsWith(`--${name}=`)) return args[i].slice(name.length + 3)
  }
  return undefined
}

export function argNumber (name: string, fallback: number): number {
  const raw = argValue(name)
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} expects a positive number, got ${raw}`)
  return value
}

export function argList (name: string, fallback: number[]): number[] {
  const raw = argValue(name)
  if (raw === undefined) return fallback
  return raw.split(',').map(s => {
    const v = Number(s)
    if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} expects positive integers separated by commas, got ${raw}`)
    return v
  })
}

/**
 * Runs contenders in interleaved rounds so that drift on a shared machine (other processes, thermal
 * state, the JIT) hits every contender alike: each round visits every contender once, in a shuffled
 * order, with a few unmeasured warm-up calls first (which also lets the previous contender's
 * onnxruntime threads stop spinning), then a block of measured calls.
 */
import { performance } from 'node:perf_hooks'
import { median, shuffle, sleep } from './stats.js'

export interface Contender {
  name: string
  /** One call; the time from call to settled result is the sample. */
  run: () => unknown
}

export interface InterleaveOptions {
  rounds: number
  perRound: number
  warmupPerRound: number
  /** Pause between contenders, ms. */
  pauseMs?: number
  seed?: number
}

export interface InterleaveResult {
  /** All measured samples per contender, ms. */
  samples: Map<string, number[]>
  /** Median of each round's samples per contender, ms (one value per round). */
  roundMedians: Map<string, number[]>
}

export async function interleave (contenders: readonly Contender[], o: InterleaveOptions): Promise<InterleaveResult> {
  const samples = new Map(contenders.map(c => [c.name, [] as number[]]))
  const roundMedians = new Map(contenders.map(c => [c.name, [] as number[]]))
  for (let round = 0; round < o.rounds; round++) {
    for (const c of shuffle([...contenders], (o.seed ?? 1) + round)) {
      if (o.pauseMs !== undefined && o.pauseMs > 0) await sleep(o.pauseMs)
      for (let i = 0; i < o.warmupPerRound; i++) await c.run()
      const block: number[] = []
      for (let i = 0; i < o.perRound; i++) {
        const t0 = performance.now()
        await c.run()
        block.push(performance.now() - t0)
      }
      samples.get(c.name)?.push(...block)
      roundMedians.get(c.name)?.push(median(block))
    }
  }
  return { samples, roundMedians }
}

/** Per-round ratio of `name`'s median to `base`'s median. */
export function roundRatios (result: InterleaveResult, name: string, base: string): number[] {
  const a = result.roundMedians.get(name) ?? []
  const b = result.roundMedians.get(base) ?? []
  return a.map((v, i) => v / b[i])
}

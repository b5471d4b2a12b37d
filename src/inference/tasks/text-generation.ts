/**
 * `text_generation`: a prompt (or its token ids) in, `{ text }` out, where `text` is the prompt
 * followed by the generated continuation (as Hugging Face pipelines return by default); the
 * continuation alone is `generated_text`. Greedy by default; `do_sample` with `temperature`,
 * `top_k`, `top_p` and an optional `seed` samples. Generation uses the model's KV cache. Requests run
 * one at a time (sequences of different lengths would need per-row stopping, which a batch of one
 * does not). Sampling requests also run one at a time across the whole worker (see `samplingLock`).
 */
import { AutoModelForCausalLM, AutoTokenizer, InterruptableStoppingCriteria, Tensor, TextStreamer, random } from '@huggingface/transformers'
import { AbortError, ValidationError } from '../../errors.js'
import { toIdRows, toMaskRows, checkIdRows, maxPositions } from '../inputs/token-ids.js'
import { asObject, optionalBool, optionalInt, optionalNumber, rejectUnknownKeys } from '../inputs/options.js'
import { loadParts, type TaskHandler, type LoadedModel, type RunContext } from './task-handler.js'
import { Semaphore } from '../semaphore.js'

/** New tokens generated when neither the request nor `resources.models[...].max_length` says. */
export const DEFAULT_MAX_NEW_TOKENS = 32

interface GenerationRequest {
  ids: number[]
  /** 0 for (left) padding the model must not attend to; all ones when the request gave none. */
  mask: number[]
  maxNewTokens: number
  doSample: boolean
  temperature?: number
  topK?: number
  topP?: number
  repetitionPenalty?: number
  seed?: number
}

/**
 * transformers.js samples from one global RNG (`random`), which `seed` re-seeds: two sampling
 * generations interleaved at their awaits would draw from each other's sequence, and a seeded request
 * would give a different text when another one runs alongside it. So sampling generations (seeded or
 * not) hold this one-slot lock from seeding to the end of generation; greedy ones draw no random
 * numbers and run freely.
 */
const samplingLock = new Semaphore(1)

const KEYS = ['prompt', 'input_ids', 'attention_mask', 'max_length', 'max_new_tokens', 'do_sample', 'temperature', 'top_k', 'top_p', 'repetition_penalty', 'seed'] as const

export class TextGenerationTask implements TaskHandler<GenerationRequest> {
  readonly task = 'text_generation' as const
  readonly batchable = false

  async load (ctx: Parameters<TaskHandler['load']>[0]): ReturnType<TaskHandler['load']> {
    const [model, tokenizer] = await loadParts([
      AutoModelForCausalLM.from_pretrained(ctx.dir, ctx.pretrained),
      AutoTokenizer.from_pretrained(ctx.dir, { local_files_only: true })
    ])
    return { model, tokenizer }
  }

  async prepare (input: unknown, m: LoadedModel): Promise<{ value: GenerationRequest, rows: number }> {
    const obj = asObject(input, Array.isArray(input) || ArrayBuffer.isView(input) ? 'input_ids' : 'prompt')
    rejectUnknownKeys(obj, KEYS)
    const positions = maxPositions(m.config)
    let ids: number[]
    let mask: number[]
    if (obj.prompt !== undefined) {
      if (obj.input_ids !== undefined) throw ValidationError.field('prompt', 'give either prompt or input_ids, not both')
      if (obj.attention_mask !== undefined) throw ValidationError.field('attention_mask', 'goes with input_ids, not prompt')
      if (typeof obj.prompt !== 'string' || obj.prompt.length === 0) throw ValidationError.field('prompt', 'expected a non-empty string')
      ids = m.tokenizer(obj.prompt, { return_tensor: false }).input_ids as number[]
      if (ids.length === 0) throw ValidationError.field('prompt', 'tokenizes to nothing')
      mask = ids.map(() => 1)
    } else if (obj.input_ids !== undefined) {
      const rows = toIdRows(obj.input_ids, 'input_ids')
      if (rows.length !== 1) throw ValidationError.field('input_ids', 'text generation takes one sequence per request')
      ids = rows[0]
      mask = toMaskRows(obj.attention_mask, rows)[0]
      // Generation continues from the last token, so only left padding makes sense (as in Hugging Face).
      if (mask[mask.length - 1] !== 1) throw ValidationError.field('attention_mask', 'must end with 1: pad prompts on the left')
    } else {
      throw ValidationError.field('prompt', 'is missing (or pass input_ids)')
    }
    checkIdRows([ids], obj.prompt !== undefined ? 'prompt' : 'input_ids', { vocabSize: m.config.vocab_size, maxLength: positions })
    const maxLength = optionalInt(obj.max_length, 'max_length', 1) ?? m.settings.max_length
    let maxNewTokens = optionalInt(obj.max_new_tokens, 'max_new_tokens', 1, 100_000)
    if (maxNewTokens === undefined && maxLength !== undefined) {
      if (maxLength <= ids.length) throw ValidationError.field('max_length', `is ${maxLength} but the prompt already has ${ids.length} tokens`)
      maxNewTokens = maxLength - ids.length
    }
    maxNewTokens ??= DEFAULT_MAX_NEW_TOKENS
    if (positions !== undefined && ids.length + maxNewTokens > positions) {
      // Generating past the position table would read out of bounds: cap it, as the model cannot go further.
      maxNewTokens = positions - ids.length
      if (maxNewTokens < 1) throw ValidationError.field('input_ids', `the prompt fills all ${positions} positions of the model`)
    }
    const value: GenerationRequest = {
      ids,
      mask,
      maxNewTokens,
      doSample: optionalBool(obj.do_sample, 'do_sample') ?? false,
      temperature: optionalNumber(obj.temperature, 'temperature', 0, 100, true),
      topK: optionalInt(obj.top_k, 'top_k', 0),
      topP: optionalNumber(obj.top_p, 'top_p', 0, 1, true),
      repetitionPenalty: optionalNumber(obj.repetition_penalty, 'repetition_penalty', 0, 100, true),
      seed: optionalInt(obj.seed, 'seed', 0, 2 ** 32 - 1)
    }
    return { value, rows: 1 }
  }

  async run (m: LoadedModel, items: GenerationRequest[], ctx: RunContext): Promise<Array<Record<string, unknown>>> {
    const out: Array<Record<string, unknown>> = []
    for (const req of items) {
      out.push(req.doSample ? await samplingLock.run(async () => await this.generate(m, req, ctx), ctx.signal) : await this.generate(m, req, ctx))
    }
    return out
  }

  private async generate (m: LoadedModel, req: GenerationRequest, ctx: RunContext): Promise<Record<string, unknown>> {
    const n = req.ids.length
    const inputIds = new Tensor('int64', BigInt64Array.from(req.ids, BigInt), [1, n])
    const attentionMask = new Tensor('int64', BigInt64Array.from(req.mask, BigInt), [1, n])
    if (req.seed !== undefined) random.seed(req.seed)
    const streamer = ctx.onToken === undefined
      ? undefined
      : new TextStreamer(m.tokenizer, { skip_prompt: true, skip_special_tokens: true, callback_function: ctx.onToken })
    // A caller may have given up while this waited (for the sampling lock, say): do not start.
    const aborted = (): boolean => ctx.signal?.aborted === true
    if (aborted()) throw new AbortError('the generation was aborted')
    // A caller that gave up (a stream left early) interrupts the generation at its next token.
    const interrupt = new InterruptableStoppingCriteria()
    const onAbort = (): void => { interrupt.interrupt() }
    ctx.signal?.addEventListener('abort', onAbort, { once: true })
    const sequences = await m.model.generate({
      input_ids: inputIds,
      attention_mask: attentionMask,
      max_new_tokens: req.maxNewTokens,
      do_sample: req.doSample,
      ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
      ...(req.topK !== undefined ? { top_k: req.topK } : {}),
      ...(req.topP !== undefined ? { top_p: req.topP } : {}),
      ...(req.repetitionPenalty !== undefined ? { repetition_penalty: req.repetitionPenalty } : {}),
      // eos_token_id is left to transformers.js, which takes generation_config.json over config.json
      // as Hugging Face does: chat models list their end-of-turn tokens only there.
      streamer,
      stopping_criteria: [interrupt]
    }).finally(() => { ctx.signal?.removeEventListener('abort', onAbort) })
    if (aborted()) throw new AbortError('the generation was aborted')
    const all = Array.from((sequences as Tensor).data as BigInt64Array, Number)
    const generated = all.slice(n)
    // Left padding (mask 0) is not part of the prompt: keep it out of `text`.
    const prompt = req.ids.filter((_, i) => req.mask[i] === 1)
    return {
      text: m.tokenizer.decode([...prompt, ...generated], { skip_special_tokens: true }),
      generated_text: m.tokenizer.decode(generated, { skip_special_tokens: true }),
      generated_tokens: generated.length,
      generated_ids: generated
    }
  }

  warmupInput (): unknown {
    return { input_ids: [0], max_new_tokens: 1 }
  }
}

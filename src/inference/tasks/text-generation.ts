/**
 * `text_generation`: a prompt (or its token ids) in, `{ text }` out, where `text` is the prompt
 * followed by the generated continuation (as Hugging Face pipelines return by default); the
 * continuation alone is `generated_text`, and the pieces streamed to `onToken` add up to exactly that.
 * Greedy by default; `do_sample` with `temperature`, `top_k`, `top_p` and an optional `seed` samples.
 * Generation uses the model's KV cache. Requests run one at a time (sequences of different lengths
 * would need per-row stopping, which a batch of one does not). Sampling requests also run one at a
 * time across the whole worker (see `samplingLock`).
 */
import { AutoModelForCausalLM, AutoTokenizer, BaseStreamer, InterruptableStoppingCriteria, LogitsProcessor, Tensor, random } from '@huggingface/transformers'
import { AbortError, ValidationError } from '../../errors.js'
import { toIdRows, toMaskRows, checkIdRows, maxPositions } from '../inputs/token-ids.js'
import { asObject, optionalBool, optionalInt, optionalNumber, rejectUnknownKeys } from '../inputs/options.js'
import { loadParts, type AnyModel, type TaskHandler, type LoadedModel, type RunContext } from './task-handler.js'
import { Semaphore } from '../semaphore.js'

/** New tokens generated when neither the request nor `resources.models[...].max_length` says. */
export const DEFAULT_MAX_NEW_TOKENS = 32

interface GenerationRequest {
  /** The prompt as given (kept verbatim at the head of `text`); undefined for `input_ids`. */
  prompt?: string
  ids: number[]
  /** 0 for (left) padding the model must not attend to; all ones when the request gave none. */
  mask: number[]
  maxNewTokens: number
  doSample: boolean
  temperature?: number
  topK?: number
  topP?: number
  repetitionPenalty?: number
  noRepeatNgramSize?: number
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

const KEYS = ['prompt', 'input_ids', 'attention_mask', 'max_length', 'max_new_tokens', 'do_sample', 'temperature', 'top_k', 'top_p', 'repetition_penalty', 'no_repeat_ngram_size', 'num_beams', 'seed'] as const

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
    const doSample = optionalBool(obj.do_sample, 'do_sample') ?? false
    // 0 is the usual way of asking for greedy decoding, which is what runs without do_sample; with
    // do_sample it would divide the logits by zero (transformers.js silently turns sampling off instead).
    const temperature = optionalNumber(obj.temperature, 'temperature', 0, 100)
    if (doSample && temperature === 0) throw ValidationError.field('temperature', 'must be above 0 when do_sample is true (leave do_sample false for greedy decoding)')
    // transformers.js has no beam search (its generate() would return several beams' tokens as one sequence).
    const numBeams = optionalInt(obj.num_beams, 'num_beams', 1)
    if (numBeams !== undefined && numBeams !== 1) throw ValidationError.field('num_beams', `beam search is not supported: only 1 (greedy or sampling), got ${numBeams}`)
    const value: GenerationRequest = {
      ...(typeof obj.prompt === 'string' ? { prompt: obj.prompt } : {}),
      ids,
      mask,
      maxNewTokens,
      doSample,
      temperature,
      topK: optionalInt(obj.top_k, 'top_k', 0),
      topP: optionalNumber(obj.top_p, 'top_p', 0, 1, true),
      repetitionPenalty: optionalNumber(obj.repetition_penalty, 'repetition_penalty', 0, 100, true),
      noRepeatNgramSize: optionalInt(obj.no_repeat_ngram_size, 'no_repeat_ngram_size', 0, 100_000),
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
    // Left padding (mask 0) is not part of the prompt: keep it out of `text`.
    const prompt = req.ids.filter((_, i) => req.mask[i] === 1)
    const continuation = new ContinuationText(m.tokenizer, prompt)
    const streamer = ctx.onToken === undefined ? undefined : new PieceStreamer(continuation, ctx.onToken)
    // A caller may have given up while this waited (for the sampling lock, say): do not start.
    const aborted = (): boolean => ctx.signal?.aborted === true
    if (aborted()) throw new AbortError('the generation was aborted')
    // A caller that gave up (a stream left early) interrupts the generation at its next token.
    const interrupt = new InterruptableStoppingCriteria()
    const onAbort = (): void => { interrupt.interrupt() }
    ctx.signal?.addEventListener('abort', onAbort, { once: true })
    const defaults = m.model.generation_config ?? {}
    const topP: number = req.topP ?? defaults.top_p ?? 1
    const topK: number = req.topK ?? defaults.top_k ?? 50
    // Only a sampling request touches the shared generator (it holds samplingLock): a greedy one draws
    // nothing, and seeding (or reseeding, below) here would change a sampling request running meanwhile.
    const seeded = req.doSample && req.seed !== undefined
    if (seeded) random.seed(req.seed)
    let sequences: Tensor
    try {
      sequences = await m.model.generate({
        input_ids: inputIds,
        attention_mask: attentionMask,
        max_new_tokens: req.maxNewTokens,
        do_sample: req.doSample,
        // A model's generation_config.json may ask for beams, which transformers.js cannot search.
        num_beams: 1,
        ...(req.temperature !== undefined && req.doSample ? { temperature: req.temperature } : {}),
        ...(req.topK !== undefined ? { top_k: req.topK } : {}),
        ...(req.repetitionPenalty !== undefined ? { repetition_penalty: req.repetitionPenalty } : {}),
        ...(req.noRepeatNgramSize !== undefined ? { no_repeat_ngram_size: req.noRepeatNgramSize } : {}),
        // transformers.js reads top_p but never applies it (see NucleusFilter).
        ...(req.doSample && topP < 1 ? { logits_processor: [new NucleusFilter(topK, topP)] } : {}),
        // eos_token_id is left to transformers.js, which takes generation_config.json over config.json
        // as Hugging Face does: chat models list their end-of-turn tokens only there.
        streamer,
        stopping_criteria: [interrupt]
      })
    } finally {
      ctx.signal?.removeEventListener('abort', onAbort)
      // The global generator would otherwise go on from this seed: the next unseeded sampling request
      // would draw a sequence fixed by it, the same text each time it follows this request.
      if (seeded) random.seed()
    }
    if (aborted()) throw new AbortError('the generation was aborted')
    const all = Array.from(sequences.data as BigInt64Array, Number)
    const generated = all.slice(n)
    if (streamer === undefined) continuation.push(generated)
    const generatedText = continuation.finish(ctx.onToken)
    // The prompt as given stays verbatim (Hugging Face's Python pipeline does the same); from ids, its decoded
    // text less the characters the continuation rewrote (the first bytes of a character it completed).
    let head = req.prompt
    if (head === undefined) {
      head = m.tokenizer.decode(prompt, { skip_special_tokens: true }) as string
      head = head.slice(0, head.length - continuation.promptRewritten)
    }
    return {
      text: head + generatedText,
      generated_text: generatedText,
      generated_tokens: generated.length,
      generated_ids: generated
    }
  }

  warmupInput (): unknown {
    return { input_ids: [0], max_new_tokens: 1 }
  }
}

/** Prompt tokens decoded ahead of the continuation: enough for a split character or a word's leading space. */
const CONTEXT_TOKENS = 8
/** Tokens decoded again at each step before the decoding window moves up (keeps streaming linear). */
const WINDOW_TOKENS = 64

/**
 * The continuation's text, grown token by token, released in pieces that later tokens cannot change.
 * Each step decodes the last few prompt tokens (or settled continuation tokens) with the new ones and
 * keeps what follows that context's own text: decoding the new tokens alone would lose what only context
 * gives (a character whose first bytes ended the prompt; a sentencepiece word's leading space), and
 * transformers.js's TextStreamer, which decodes them alone and cuts at spaces, also streams a space that
 * `clean_up_tokenization_spaces` removes once a "." follows, and loses the ".". Held back until later
 * tokens decide them: trailing U+FFFD (a character whose remaining bytes may still come) and, when the
 * tokenizer cleans up spaces, a space followed by fewer than 3 characters (" ." and " n't" lose it).
 */
export class ContinuationText {
  private readonly tokens: number[]
  private readonly promptLength: number
  private readonly cleansSpaces: boolean
  /** First token decoded. */
  private from: number
  /** End of the settled part: tokens before it are only context. */
  private anchor: number
  /** The decoded text of tokens [from, anchor). */
  private headText: string
  /** Continuation text before `anchor`. */
  private settled = ''
  /** Continuation text released so far. */
  private released = ''
  /** Characters at the end of the prompt's text that the continuation rewrote (a character it completed). */
  promptRewritten = 0

  constructor (private readonly tokenizer: AnyModel, prompt: number[]) {
    this.tokens = [...prompt]
    this.promptLength = prompt.length
    this.from = Math.max(0, prompt.length - CONTEXT_TOKENS)
    this.anchor = prompt.length
    this.headText = this.decode(this.from, this.anchor)
    this.cleansSpaces = cleansSpaces(tokenizer)
  }

  /** Adds generated tokens; returns the text they release (possibly ''). */
  push (ids: readonly number[]): string {
    for (const id of ids) this.tokens.push(id)
    const full = this.current()
    const stable = full.slice(0, this.stableLength(full))
    // Never release a text that does not continue what was released (no known decoder does that).
    if (stable.length <= this.released.length || !stable.startsWith(this.released)) return ''
    const piece = stable.slice(this.released.length)
    this.released = stable
    if (stable.length === full.length && this.tokens.length - this.from >= WINDOW_TOKENS) {
      // Nothing held back: these tokens are settled and become the next steps' context.
      this.settled = full
      this.anchor = this.tokens.length
      this.from = this.anchor - CONTEXT_TOKENS
      this.headText = this.decode(this.from, this.anchor)
    }
    return piece
  }

  /** The whole continuation; sends what was held back to `onPiece`. */
  finish (onPiece?: (text: string) => void): string {
    const full = this.current()
    if (full.startsWith(this.released) && full.length > this.released.length) onPiece?.(full.slice(this.released.length))
    this.released = full
    return full
  }

  private current (): string {
    const text = this.decode(this.from, this.tokens.length)
    let k = 0
    while (k < text.length && k < this.headText.length && text[k] === this.headText[k]) k++
    if (this.anchor === this.promptLength) this.promptRewritten = this.headText.length - k
    return this.settled + text.slice(k)
  }

  private stableLength (text: string): number {
    let end = text.length
    while (end > 0 && text[end - 1] === '\uFFFD') end--
    if (this.cleansSpaces) {
      const space = text.lastIndexOf(' ', end - 1)
      if (space >= 0 && end - space - 1 < 3) end = space
    }
    return end
  }

  private decode (start: number, end: number): string {
    return start < end ? this.tokenizer.decode(this.tokens.slice(start, end), { skip_special_tokens: true }) as string : ''
  }
}

/** Whether the tokenizer's decode removes spaces before punctuation (`clean_up_tokenization_spaces`). */
function cleansSpaces (tokenizer: AnyModel): boolean {
  try {
    const ids = tokenizer.encode('a .', { add_special_tokens: false }) as number[]
    return !(tokenizer.decode(ids, { skip_special_tokens: true }) as string).endsWith(' .')
  } catch {
    return true
  }
}

/** Feeds generated tokens to a ContinuationText and sends the pieces it releases. */
class PieceStreamer extends BaseStreamer {
  private promptSeen = false

  constructor (private readonly text: ContinuationText, private readonly onPiece: (text: string) => void) {
    super()
  }

  override put (value: bigint[][]): void {
    // generate() first puts the prompt, which ContinuationText already has.
    if (!this.promptSeen) {
      this.promptSeen = true
      return
    }
    const piece = this.text.push(value[0].map(Number))
    if (piece.length > 0) this.onPiece(piece)
  }

  // What is still held back is sent with the result's text (ContinuationText.finish).
  override end (): void {}
}

/**
 * Nucleus (top-p) filtering. transformers.js takes `top_p` (from the request or generation_config.json)
 * but never applies it: its TopPLogitsWarper has no body and its sampler only cuts to `top_k`. This is
 * Hugging Face's order: on the temperature-scaled logits, keep the `top_k` best, then the smallest set of
 * those whose probabilities (renormalised over the top k) reach `top_p`; the rest get -Infinity.
 */
export class NucleusFilter extends LogitsProcessor {
  constructor (private readonly topK: number, private readonly topP: number) {
    super()
  }

  override _call (inputIds: bigint[][], logits: Tensor): Tensor {
    const data = logits.data as Float32Array
    const vocab = logits.dims[logits.dims.length - 1]
    for (let r = 0; r < data.length / vocab; r++) nucleus(data.subarray(r * vocab, (r + 1) * vocab), this.topK, this.topP)
    return logits
  }
}

function nucleus (row: Float32Array, topK: number, topP: number): void {
  const k = topK > 0 ? Math.min(topK, row.length) : row.length
  const order = bestIndices(row, k)
  const max = row[order[0]]
  let total = 0
  for (const i of order) total += Math.exp(row[i] - max)
  let kept = 0
  let mass = 0
  while (kept < order.length && (kept === 0 || mass < topP * total)) mass += Math.exp(row[order[kept++]] - max)
  const keep = new Set(order.slice(0, kept))
  for (let i = 0; i < row.length; i++) if (!keep.has(i)) row[i] = -Infinity
}

/** Indices of the `k` largest values, largest first. */
function bestIndices (row: Float32Array, k: number): number[] {
  if (k * 8 >= row.length) return Array.from(row.keys()).sort((a, b) => row[b] - row[a]).slice(0, k)
  // A small k (top_k is 50 by default) over a large vocabulary: insert into a short sorted list.
  const best: number[] = []
  for (let i = 0; i < row.length; i++) {
    const v = row[i]
    if (best.length === k && !(v > row[best[k - 1]])) continue
    let at = best.length
    while (at > 0 && v > row[best[at - 1]]) at--
    best.splice(at, 0, i)
    if (best.length > k) best.pop()
  }
  return best
}

/**
 * The tokenizer of the tiny Whisper: byte-level BPE text tokens followed by Whisper's special tokens
 * in the order of the multilingual OpenAI checkpoints (`<|endoftext|>`, `<|startoftranscript|>`, 99
 * language tokens, task and control tokens, `<|notimestamps|>`, then 1501 timestamp tokens). With the
 * default 51865-token vocabulary every special token has the id it has in openai/whisper-tiny, so
 * prompts written for real Whisper mean the same here.
 */
import { addedToken, byteAlphabet, bytesToUnicode, growBpe, mergeWords, toByteSymbols, type BpeVocabulary } from './bpe-tokenizer.js'

/** Language codes in Whisper's token order (the 99 of the multilingual v1/v2 checkpoints). */
export const WHISPER_LANGUAGES: readonly string[] = Object.freeze((
  'en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt ' +
  'la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc ' +
  'ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su'
).split(' '))

const CONTROL_TOKENS = ['<|translate|>', '<|transcribe|>', '<|startoflm|>', '<|startofprev|>', '<|nocaptions|>', '<|notimestamps|>'] as const
/** Timestamps from 0.00 to 30.00 s in 0.02 s steps: transformers.js assumes exactly this many. */
const TIMESTAMP_COUNT = 1501

/** Tokens after the text vocabulary. */
export const WHISPER_SPECIAL_COUNT = 2 + WHISPER_LANGUAGES.length + CONTROL_TOKENS.length + TIMESTAMP_COUNT

/** Smallest vocabulary: the 256 byte tokens and the special tokens. */
export const MIN_WHISPER_VOCAB = 256 + WHISPER_SPECIAL_COUNT

/** Ids of Whisper's special tokens for a given vocabulary size. */
export interface WhisperTokenIds {
  /** Number of byte-level BPE text tokens (ids below this). */
  textTokens: number
  endOfText: number
  startOfTranscript: number
  /** `<|en|>` etc. by language code. */
  languages: Record<string, number>
  translate: number
  transcribe: number
  startOfLm: number
  startOfPrev: number
  noCaptions: number
  noTimestamps: number
  /** `<|0.00|>`; timestamp `k` is `firstTimestamp + k`. */
  firstTimestamp: number
  /** The text token that is a single space, which Whisper never starts a transcript with. */
  space: number
}

/** Special token ids for a vocabulary of `vocabSize` tokens (at least {@link MIN_WHISPER_VOCAB}). */
export function whisperTokenIds (vocabSize: number): WhisperTokenIds {
  const textTokens = vocabSize - WHISPER_SPECIAL_COUNT
  const languages: Record<string, number> = {}
  WHISPER_LANGUAGES.forEach((code, i) => { languages[code] = textTokens + 2 + i })
  const control = textTokens + 2 + WHISPER_LANGUAGES.length
  return {
    textTokens,
    endOfText: textTokens,
    startOfTranscript: textTokens + 1,
    languages,
    translate: control,
    transcribe: control + 1,
    startOfLm: control + 2,
    startOfPrev: control + 3,
    noCaptions: control + 4,
    noTimestamps: control + 5,
    firstTimestamp: control + 6,
    space: byteAlphabet().indexOf(toByteSymbols(' ')[0])
  }
}

/** The text part of the vocabulary: 256 byte tokens and merges grown over English words. */
export function buildWhisperTextVocab (vocabSize: number): BpeVocabulary {
  const ids = whisperTokenIds(vocabSize)
  return growBpe({
    base: byteAlphabet(),
    newTokens: ids.textTokens - 256,
    // Whisper's text, like GPT-2's, marks a word start with the space byte ('Ġ') glued to the word.
    words: mergeWords([word => toByteSymbols(` ${word}`), word => toByteSymbols(word)])
  })
}

/** Every special token in id order, from `<|endoftext|>` to the last timestamp. */
export function whisperSpecialTokens (): string[] {
  const timestamps = Array.from({ length: TIMESTAMP_COUNT }, (_, k) => `<|${(k * 0.02).toFixed(2)}|>`)
  return ['<|endoftext|>', '<|startoftranscript|>', ...WHISPER_LANGUAGES.map(code => `<|${code}|>`), ...CONTROL_TOKENS, ...timestamps]
}

/**
 * Text tokens a transcript should not contain: single bytes that are control characters or parts of
 * multi-byte UTF-8 sequences, which a random model would otherwise emit as U+FFFD.
 */
export function unprintableByteTokens (): number[] {
  const alphabet = byteAlphabet()
  const symbols = bytesToUnicode()
  const out: number[] = []
  for (let byte = 0; byte < 256; byte++) {
    if (byte < 0x20 || byte >= 0x7f) out.push(alphabet.indexOf(symbols[byte]))
  }
  return out.sort((a, b) => a - b)
}

/** `tokenizer.json`: byte-level BPE with Whisper's special tokens as added tokens. */
export function whisperTokenizerJson (text: BpeVocabulary, vocabSize: number): object {
  const ids = whisperTokenIds(vocabSize)
  if (text.vocab.length !== ids.textTokens) {
    throw new Error(`text vocabulary has ${text.vocab.length} tokens, expected ${ids.textTokens}`)
  }
  const specials = whisperSpecialTokens()
  const vocab: Record<string, number> = {}
  text.vocab.forEach((token, id) => { vocab[token] = id })
  specials.forEach((token, i) => { vocab[token] = ids.endOfText + i })
  const added = specials.map((token, i) => {
    const entry = addedToken(ids.endOfText + i, token, false) as Record<string, unknown>
    // Timestamps must not be "special": the ASR decoder looks special ids up before it checks for timestamps.
    return i >= ids.firstTimestamp - ids.endOfText ? { ...entry, special: false } : entry
  })
  const special = (token: string): object => ({ SpecialToken: { id: token, type_id: 0 } })
  const prefix = [special('<|startoftranscript|>'), special('<|notimestamps|>')]
  const suffix = [special('<|endoftext|>')]
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [...prefix, { Sequence: { id: 'A', type_id: 0 } }, ...suffix],
      pair: [...prefix, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }, ...suffix],
      special_tokens: Object.fromEntries([
        ['<|startoftranscript|>', ids.startOfTranscript], ['<|notimestamps|>', ids.noTimestamps], ['<|endoftext|>', ids.endOfText]
      ].map(([token, id]) => [token, { id: token, ids: [id], tokens: [token] }]))
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: text.merges
    }
  }
}

/** `tokenizer_config.json` naming WhisperTokenizer. */
export function whisperTokenizerConfig (maxPositions: number): object {
  const specials = whisperSpecialTokens()
  return {
    tokenizer_class: 'WhisperTokenizer',
    model_max_length: maxPositions,
    add_prefix_space: false,
    bos_token: '<|endoftext|>',
    eos_token: '<|endoftext|>',
    unk_token: '<|endoftext|>',
    pad_token: '<|endoftext|>',
    clean_up_tokenization_spaces: true,
    errors: 'replace',
    additional_special_tokens: specials.slice(1, 2 + WHISPER_LANGUAGES.length + CONTROL_TOKENS.length)
  }
}

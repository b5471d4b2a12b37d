/**
 * A CLIPTokenizer-style vocabulary: lower-cased byte-level BPE whose word-final symbols carry a
 * `</w>` suffix, laid out like openai/clip's (256 bytes, the same 256 with `</w>`, merges, then
 * `<|startoftext|>` and `<|endoftext|>` last). The end token having the highest id is what lets the
 * text tower pool at `argmax(input_ids)`, as real CLIP does; it doubles as the padding token, and
 * ArgMax's first-occurrence rule still picks the real end of text.
 */
import { addedToken, byteAlphabet, growBpe, mergeWords, toByteSymbols, type BpeVocabulary } from './bpe-tokenizer.js'

export const CLIP_START = '<|startoftext|>'
export const CLIP_END = '<|endoftext|>'
const SUFFIX = '</w>'
/** Smallest vocabulary: both byte alphabets and the two special tokens. */
export const MIN_CLIP_VOCAB = 514
export const MAX_CLIP_VOCAB = 65536

/** Vocabulary of exactly `vocabSize` tokens; start and end are the last two ids. */
export function buildClipVocabulary (vocabSize: number): BpeVocabulary {
  const bytes = byteAlphabet()
  const bpe = growBpe({
    base: [...bytes, ...bytes.map(b => b + SUFFIX)],
    newTokens: vocabSize - MIN_CLIP_VOCAB,
    words: mergeWords([word => {
      const symbols = toByteSymbols(word)
      symbols[symbols.length - 1] += SUFFIX
      return symbols
    }])
  })
  bpe.vocab.push(CLIP_START, CLIP_END)
  if (bpe.vocab.length !== vocabSize) throw new Error(`CLIP vocabulary came out with ${bpe.vocab.length} tokens, not ${vocabSize}`)
  return bpe
}

/** `tokenizer.json` with CLIP's normalizer (NFC, collapse whitespace, lower-case) and pre-tokenizer. */
export function clipTokenizerJson (bpe: BpeVocabulary): object {
  const start = bpe.vocab.length - 2
  const end = bpe.vocab.length - 1
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [addedToken(start, CLIP_START, true), addedToken(end, CLIP_END, true)],
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }]
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: { Regex: "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+" },
          behavior: 'Removed',
          invert: true
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }
      ]
    },
    post_processor: { type: 'RobertaProcessing', sep: [CLIP_END, end], cls: [CLIP_START, start], trim_offsets: false, add_prefix_space: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: CLIP_END,
      continuing_subword_prefix: '',
      end_of_word_suffix: SUFFIX,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(bpe.vocab.map((token, id) => [token, id])),
      merges: bpe.merges.map(([a, b]) => `${a} ${b}`)
    }
  }
}

/** `tokenizer_config.json` for a CLIPTokenizer padding with the end token. */
export function clipTokenizerConfig (maxLength: number): object {
  return {
    tokenizer_class: 'CLIPTokenizer',
    do_lower_case: true,
    bos_token: CLIP_START,
    eos_token: CLIP_END,
    unk_token: CLIP_END,
    pad_token: CLIP_END,
    model_max_length: maxLength,
    errors: 'replace',
    clean_up_tokenization_spaces: true
  }
}

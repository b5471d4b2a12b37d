/**
 * The character vocabulary and tokenizer files of the tiny Wav2Vec2 (CTC): the 32 tokens of
 * facebook/wav2vec2-base-960h in their original order, `<pad>` (id 0) doubling as the CTC blank and
 * `|` as the word delimiter.
 */

/** Token ids by token; index = id. */
export const CTC_VOCAB: readonly string[] = Object.freeze([
  '<pad>', '<s>', '</s>', '<unk>', '|',
  'E', 'T', 'A', 'O', 'N', 'I', 'H', 'S', 'R', 'D', 'L', 'U', 'M', 'W', 'C', 'F', 'G', 'Y', 'P', 'B', 'V', 'K', "'", 'X', 'J', 'Q', 'Z'
])

/** `<pad>`, which CTC emits for "no new character in this frame". */
export const CTC_BLANK_ID = 0

function vocabObject (): Record<string, number> {
  return Object.fromEntries(CTC_VOCAB.map((token, id) => [token, id]))
}

/** `tokenizer.json`: WordLevel characters, spaces as `|`, and the CTC decoder. */
export function ctcTokenizerJson (): object {
  const special = ['<s>', '</s>', '<unk>']
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    // `<pad>` is deliberately not a special added token: transformers.js drops special tokens before
    // the CTC decoder collapses repeats, which would turn "L <pad> L" (two letters) into one.
    added_tokens: special.map(content => ({
      id: CTC_VOCAB.indexOf(content), content, single_word: false, lstrip: true, rstrip: true, normalized: false, special: true
    })),
    normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '|' },
    pre_tokenizer: { type: 'Split', pattern: { Regex: '.' }, behavior: 'Isolated', invert: false },
    post_processor: null,
    decoder: { type: 'CTC', pad_token: '<pad>', word_delimiter_token: '|', cleanup: true },
    model: { type: 'WordLevel', vocab: vocabObject(), unk_token: '<unk>' }
  }
}

/** `tokenizer_config.json` naming Wav2Vec2CTCTokenizer. */
export function ctcTokenizerConfig (): object {
  return {
    tokenizer_class: 'Wav2Vec2CTCTokenizer',
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: '<pad>',
    word_delimiter_token: '|',
    replace_word_delimiter_char: ' ',
    do_lower_case: false,
    clean_up_tokenization_spaces: true,
    model_max_length: 1_000_000
  }
}

/** `vocab.json`, which the Python Wav2Vec2CTCTokenizer reads instead of `tokenizer.json`. */
export function ctcVocabJson (): object {
  return vocabObject()
}

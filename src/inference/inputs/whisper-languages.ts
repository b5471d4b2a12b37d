/**
 * The languages Whisper knows, as transformers.js 4.x names them (its own table, in
 * models/whisper/common_whisper.js, is not exported): `language` is checked here so that an unknown
 * one is a ValidationError, not an error from inside generation.
 */

/** [code, name] in Whisper's token order. */
const LANGUAGES: ReadonlyArray<readonly [string, string]> = [
  ['en', 'english'], ['zh', 'chinese'], ['de', 'german'], ['es', 'spanish'], ['ru', 'russian'],
  ['ko', 'korean'], ['fr', 'french'], ['ja', 'japanese'], ['pt', 'portuguese'], ['tr', 'turkish'],
  ['pl', 'polish'], ['ca', 'catalan'], ['nl', 'dutch'], ['ar', 'arabic'], ['sv', 'swedish'],
  ['it', 'italian'], ['id', 'indonesian'], ['hi', 'hindi'], ['fi', 'finnish'], ['vi', 'vietnamese'],
  ['he', 'hebrew'], ['uk', 'ukrainian'], ['el', 'greek'], ['ms', 'malay'], ['cs', 'czech'],
  ['ro', 'romanian'], ['da', 'danish'], ['hu', 'hungarian'], ['ta', 'tamil'], ['no', 'norwegian'],
  ['th', 'thai'], ['ur', 'urdu'], ['hr', 'croatian'], ['bg', 'bulgarian'], ['lt', 'lithuanian'],
  ['la', 'latin'], ['mi', 'maori'], ['ml', 'malayalam'], ['cy', 'welsh'], ['sk', 'slovak'], ['te', 'telugu'],
  ['fa', 'persian'], ['lv', 'latvian'], ['bn', 'bengali'], ['sr', 'serbian'], ['az', 'azerbaijani'],
  ['sl', 'slovenian'], ['kn', 'kannada'], ['et', 'estonian'], ['mk', 'macedonian'], ['br', 'breton'],
  ['eu', 'basque'], ['is', 'icelandic'], ['hy', 'armenian'], ['ne', 'nepali'], ['mn', 'mongolian'],
  ['bs', 'bosnian'], ['kk', 'kazakh'], ['sq', 'albanian'], ['sw', 'swahili'], ['gl', 'galician'],
  ['mr', 'marathi'], ['pa', 'punjabi'], ['si', 'sinhala'], ['km', 'khmer'], ['sn', 'shona'],
  ['yo', 'yoruba'], ['so', 'somali'], ['af', 'afrikaans'], ['oc', 'occitan'], ['ka', 'georgian'],
  ['be', 'belarusian'], ['tg', 'tajik'], ['sd', 'sindhi'], ['gu', 'gujarati'], ['am', 'amharic'],
  ['yi', 'yiddish'], ['lo', 'lao'], ['uz', 'uzbek'], ['fo', 'faroese'], ['ht', 'haitian creole'],
  ['ps', 'pashto'], ['tk', 'turkmen'], ['nn', 'nynorsk'], ['mt', 'maltese'], ['sa', 'sanskrit'],
  ['lb', 'luxembourgish'], ['my', 'myanmar'], ['bo', 'tibetan'], ['tl', 'tagalog'], ['mg', 'malagasy'],
  ['as', 'assamese'], ['tt', 'tatar'], ['haw', 'hawaiian'], ['ln', 'lingala'], ['ha', 'hausa'],
  ['ba', 'bashkir'], ['jw', 'javanese'], ['su', 'sundanese']
]

/** Other names transformers.js also accepts. */
const ALIASES: Readonly<Record<string, string>> = {
  burmese: 'my', valencian: 'ca', flemish: 'nl', haitian: 'ht', letzeburgesch: 'lb', pushto: 'ps',
  panjabi: 'pa', moldavian: 'ro', moldovan: 'ro', sinhalese: 'si', castilian: 'es'
}

const CODES = new Set(LANGUAGES.map(([code]) => code))
const BY_NAME = new Map<string, string>([...LANGUAGES.map(([code, name]): [string, string] => [name, code]), ...Object.entries(ALIASES)])

/**
 * The Whisper language code for a code (`en`), a name (`English`) or a language token (`<|en|>`),
 * case-insensitive, as transformers.js reads them; undefined when Whisper does not know it.
 */
export function whisperLanguageCode (language: string): string | undefined {
  const lower = language.toLowerCase()
  const byName = BY_NAME.get(lower)
  if (byName !== undefined) return byName
  const code = /^<\|([a-z]+)\|>$/.exec(lower)?.[1] ?? lower
  return CODES.has(code) ? code : undefined
}

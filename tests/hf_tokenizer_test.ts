// WordPiece through Hugging Face's JS tokenizers, on the real all-MiniLM-L6-v2 tokenizer.json.
// Expected tokens are written by hand from BERT's uncased WordPiece rules (lower-case, strip
// accents, split punctuation, greedy longest-match-first with ## continuations); their ids are
// looked up independently in vocab.txt (id = line number).
import { deepStrictEqual, ok, rejects, throws } from "node:assert/strict";
import { loadHfTokenizer, SUPPORTED_TOKENIZER_MODELS } from "../src/text/tokenizer.ts";

const dataDir = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";
const modelDir = `${dataDir}/../models/minilm-l6-tokenizer`;

const CASES: [string, string[]][] = [
  ["Hello, world!", ["[CLS]", "hello", ",", "world", "!", "[SEP]"]],
  // Longest match first: "una" is in this vocabulary and "unaf" is not (asserted below).
  ["unaffable", ["[CLS]", "una", "##ffa", "##ble", "[SEP]"]],
  ["Café  NAÏVE résumé", ["[CLS]", "cafe", "naive", "resume", "[SEP]"]],
  ["", ["[CLS]", "[SEP]"]],
  ["   \t\n ", ["[CLS]", "[SEP]"]],
  ["p53-dependent apoptosis", [
    "[CLS]",
    "p",
    "##53",
    "-",
    "dependent",
    "ap",
    "##op",
    "##tosis",
    "[SEP]",
  ]],
];

Deno.test("WordPiece ids equal hand-verified tokens looked up in vocab.txt", async () => {
  const vocab = (await Deno.readTextFile(`${modelDir}/vocab.txt`)).split("\n");
  const idOf = (token: string) => {
    const id = vocab.indexOf(token);
    if (id < 0) throw new Error(`token ${token} not in vocab.txt`);
    return id;
  };
  deepStrictEqual(vocab.includes("unaf"), false);
  const tok = await loadHfTokenizer(modelDir);
  deepStrictEqual(tok.padId, idOf("[PAD]"));
  for (const [text, tokens] of CASES) {
    deepStrictEqual(tok.encode(text, 512), { ids: tokens.map(idOf), truncated: false }, text);
  }
});

Deno.test("truncation keeps [CLS] and the closing [SEP] and says so", async () => {
  const tok = await loadHfTokenizer(modelDir);
  const full = tok.encode("one two three four five six", 512).ids;
  const cut = tok.encode("one two three four five six", 5);
  deepStrictEqual(cut.truncated, true);
  deepStrictEqual(cut.ids, [...full.slice(0, 4), full[full.length - 1]]);
});

Deno.test("tokenizer files: vocabulary size known; malformed files are errors naming the file", async () => {
  const tok = await loadHfTokenizer(modelDir);
  deepStrictEqual(tok.vocabSize, 30522);
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, string | null, RegExp][] = [
      ["{", null, /tokenizer.json: the tokenizer is not valid JSON/],
      ["[1, 2]", null, /tokenizer.json: the tokenizer is not a JSON object/],
      ["{}", null, /tokenizer.json: not a tokenizer this project can use: .*model/],
      [
        await Deno.readTextFile(`${modelDir}/tokenizer.json`),
        "{oops",
        /tokenizer_config.json: the tokenizer config is not valid JSON/,
      ],
    ];
    for (const [json, config, re] of cases) {
      await Deno.writeTextFile(`${dir}/tokenizer.json`, json);
      if (config === null) await Deno.remove(`${dir}/tokenizer_config.json`).catch(() => {});
      else await Deno.writeTextFile(`${dir}/tokenizer_config.json`, config);
      let message = "";
      try {
        await loadHfTokenizer(dir);
      } catch (e) {
        message = (e as Error).message;
      }
      if (!message.startsWith(`${dir}/`) || !re.test(message)) {
        throw new Error(`${JSON.stringify(message)} does not match ${re}`);
      }
    }
    await Deno.remove(`${dir}/tokenizer.json`);
    await Deno.remove(`${dir}/tokenizer_config.json`);
    let message = "";
    await loadHfTokenizer(dir).catch((e) => message = e.message);
    if (!message.startsWith(`${dir}/tokenizer.json: cannot read the tokenizer`)) {
      throw new Error(message);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenizer.json: unknown model types, non-integer ids and invalid UTF-8 are refused", async () => {
  const json = JSON.parse(await Deno.readTextFile(`${modelDir}/tokenizer.json`));
  const dir = await Deno.makeTempDir();
  const path = `${dir}/tokenizer.json`;
  try {
    // Before: {"type": "Foo"} loaded (the JS library falls back to a legacy model) and encode
    // returned undefined ids. WordLevel (Rust tokenizers) is not implemented in JS either.
    for (const type of ["Foo", "WordLevel", undefined]) {
      await Deno.writeTextFile(path, JSON.stringify({ ...json, model: { ...json.model, type } }));
      await rejects(loadHfTokenizer(dir), (e: Error) => {
        ok(e.message.startsWith(`${path}: not a tokenizer this project can use: `), e.message);
        ok(e.message.includes(type === undefined ? "model.type is missing" : `"${type}"`));
        ok(e.message.includes("WordPiece, BPE, Unigram"), e.message);
        return true;
      });
    }
    deepStrictEqual(SUPPORTED_TOKENIZER_MODELS, ["WordPiece", "BPE", "Unigram"]);
    // A vocabulary with a fractional id: refused at load when the probe text meets it...
    const frac = (token: string) => ({
      ...json,
      model: { ...json.model, vocab: { ...json.model.vocab, [token]: 0.5 } },
    });
    await Deno.writeTextFile(path, JSON.stringify(frac("hello")));
    await rejects(
      loadHfTokenizer(dir),
      new RegExp(`^TokenizerError: ${path}: the tokenizer gave id 0.5 \\(token 3\\) for the text`),
    );
    // ... and otherwise when encoding, naming the file and the text (before: ids [101, 0.5, 102]).
    await Deno.writeTextFile(path, JSON.stringify(frac("protein")));
    const tok = await loadHfTokenizer(dir);
    throws(
      () => tok.encode("protein", 16),
      new RegExp(
        `^TokenizerError: ${path}: the tokenizer gave id 0.5 \\(token 2\\) for the text "protein"`,
      ),
    );
    // Invalid UTF-8: before, read with U+FFFD in place of the bytes (merging tokens).
    const bytes = new TextEncoder().encode(JSON.stringify(json, null, 1));
    const at = bytes.indexOf("[".charCodeAt(0)) + 1; // inside the first string after a bracket
    const bad = bytes.slice();
    bad[at] = 0xff;
    await Deno.writeFile(path, bad);
    await rejects(
      loadHfTokenizer(dir),
      new RegExp(`^DataFormatError: ${path}:\\d+: invalid UTF-8`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

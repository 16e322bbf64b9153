// WordPiece through Hugging Face's JS tokenizers, on the real all-MiniLM-L6-v2 tokenizer.json.
// Expected tokens are written by hand from BERT's uncased WordPiece rules (lower-case, strip
// accents, split punctuation, greedy longest-match-first with ## continuations); their ids are
// looked up independently in vocab.txt (id = line number).
import { deepStrictEqual } from "node:assert/strict";
import { loadHfTokenizer } from "../src/text/tokenizer.ts";

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

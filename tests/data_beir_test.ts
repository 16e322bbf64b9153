// BEIR readers on the real SciFact files and on small broken files (errors name file and
// line), qrels format detection, and dataset resolution.

import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import {
  loadBeir,
  parseBeirQrels,
  readBeirCorpus,
  readBeirQrels,
  readBeirQueries,
} from "../src/data/beir.ts";
import { parseQrels, readQrels } from "../src/data/qrels.ts";
import { resolveDataset } from "../src/data/resolve.ts";

const DATA = Deno.env.get("SELFMARGIN_DATA_DIR") ?? "../shared/datasets";
const SCIFACT = `${DATA}/scifact`;

Deno.test("SciFact in BEIR layout reads with the documented counts", async () => {
  const corpus = await readBeirCorpus(`${SCIFACT}/corpus.jsonl`);
  strictEqual(corpus.length, 5183);
  ok(corpus.every((d) => d.id !== "" && typeof d.title === "string" && d.text.length > 0));
  const queries = await readBeirQueries(`${SCIFACT}/queries.jsonl`);
  strictEqual(queries.size, 1109);
  const test = await readBeirQrels(`${SCIFACT}/qrels/test.tsv`);
  strictEqual(test.size, 300);
  let pairs = 0;
  for (const q of test.values()) pairs += q.size;
  strictEqual(pairs, 339);
  const split = await loadBeir(SCIFACT, "train");
  strictEqual(split.queries.size, 809);
  strictEqual(split.corpus.length, 5183);
  // Auto-detection reads BEIR TSV as BEIR.
  deepStrictEqual(await readQrels(`${SCIFACT}/qrels/test.tsv`), test);
});

async function withFile(name: string, text: string, f: (path: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/${name}`, text);
    await f(`${dir}/${name}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function errorAt(path: string, line: number, pattern: RegExp) {
  return (e: Error) => {
    ok(e.message.startsWith(`${path}:${line}: `), e.message);
    ok(pattern.test(e.message), e.message);
    return true;
  };
}

Deno.test("corpus/queries errors: bad JSON, missing _id, duplicate _id, missing text", async () => {
  const good = '{"_id": "a", "title": "T", "text": "x"}';
  await withFile("corpus.jsonl", `${good}\n{"_id": "b", "text": }\n`, async (p) => {
    await rejects(readBeirCorpus(p), errorAt(p, 2, /invalid JSON/));
  });
  await withFile("corpus.jsonl", `${good}\n\n{"title": "T", "text": "y"}\n`, async (p) => {
    await rejects(readBeirCorpus(p), errorAt(p, 3, /missing or empty "_id"/));
  });
  await withFile("corpus.jsonl", `${good}\n${good}\n`, async (p) => {
    await rejects(readBeirCorpus(p), errorAt(p, 2, /duplicate _id 'a' \(first on line 1\)/));
  });
  await withFile("queries.jsonl", `{"_id": "q1"}\n`, async (p) => {
    await rejects(readBeirQueries(p), errorAt(p, 1, /missing "text"/));
  });
  await withFile("corpus.jsonl", `[1, 2]\n`, async (p) => {
    await rejects(readBeirCorpus(p), errorAt(p, 1, /expected a JSON object/));
  });
});

Deno.test("BEIR qrels: header, fields, integer scores, duplicates", () => {
  const q = parseBeirQrels("query-id\tcorpus-id\tscore\n1\td1\t1\n1\td2\t0\n2\td1\t2\n", "t.tsv");
  strictEqual(q.get("1")!.get("d2"), 0);
  strictEqual(q.get("2")!.get("d1"), 2);
  const err = (text: string, re: RegExp) => {
    try {
      parseBeirQrels(text, "t.tsv");
    } catch (e) {
      ok(re.test((e as Error).message), (e as Error).message);
      return;
    }
    throw new Error(`no error for ${JSON.stringify(text)}`);
  };
  err("query-id\tcorpus-id\n1\td1\t1\n", /t.tsv:1: bad header/);
  err("query-id\tcorpus-id\tscore\n1\td1\n", /t.tsv:2: expected 3 tab-separated fields/);
  err("query-id\tcorpus-id\tscore\n1\td1\t0.5\n", /t.tsv:2: score '0.5' is not an integer/);
  err("query-id\tcorpus-id\tscore\n1\td1\t1\n1\td1\t1\n", /t.tsv:3: duplicate judgement/);
});

Deno.test("qrels format detection: TREC vs BEIR", () => {
  deepStrictEqual(parseQrels("1 0 d1 1\n"), parseQrels("query-id\tcorpus-id\tscore\n1\td1\t1\n"));
  deepStrictEqual(parseQrels("1\td1\t1\n"), parseQrels("1 0 d1 1"));
});

Deno.test("loadBeir: missing split and queries missing from queries.jsonl are errors", async () => {
  await rejects(loadBeir(SCIFACT, "nosuchsplit"), /no qrels for split 'nosuchsplit'/);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/qrels`);
    await Deno.writeTextFile(`${dir}/corpus.jsonl`, '{"_id": "d", "text": "t"}\n');
    await Deno.writeTextFile(`${dir}/queries.jsonl`, '{"_id": "1", "text": "q"}\n');
    await Deno.writeTextFile(`${dir}/qrels/test.tsv`, "query-id\tcorpus-id\tscore\n2\td\t1\n");
    await rejects(loadBeir(dir, "test"), /query '2' of .*qrels\/test.tsv missing/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveDataset: --data, then $SELFMARGIN_DATA_DIR/<name>, then cache, else a clear error", async () => {
  const env = (vars: Record<string, string>) => (k: string) => vars[k];
  strictEqual(await resolveDataset("scifact", { data: SCIFACT, env: env({}) }), SCIFACT);
  strictEqual(await resolveDataset("scifact", { data: DATA, env: env({}) }), `${DATA}/scifact`);
  strictEqual(
    await resolveDataset("scifact", { env: env({ SELFMARGIN_DATA_DIR: DATA }) }),
    `${DATA}/scifact`,
  );
  // Cache: $SELFMARGIN_CACHE_DIR/datasets/<name>.
  const cache = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${cache}/datasets/tiny`, { recursive: true });
    await Deno.writeTextFile(`${cache}/datasets/tiny/corpus.jsonl`, "");
    strictEqual(
      await resolveDataset("tiny", { env: env({ SELFMARGIN_CACHE_DIR: cache }) }),
      `${cache}/datasets/tiny`,
    );
    await rejects(
      resolveDataset("nfcorpus", {
        env: env({ SELFMARGIN_CACHE_DIR: cache, SELFMARGIN_DATA_DIR: DATA }),
      }),
      (e: Error) => {
        for (
          const part of [
            "--data DIR",
            "SELFMARGIN_DATA_DIR",
            `${DATA}/nfcorpus`,
            `${cache}/datasets/nfcorpus`,
          ]
        ) {
          ok(e.message.includes(part), `${part} missing from: ${e.message}`);
        }
        return true;
      },
    );
    await rejects(resolveDataset("scifact", { data: cache, env: env({}) }), /not found at --data/);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("qrels detection: a TREC line with tabs is never BEIR; decided once per file", () => {
  // The line: three fields by tabs, four by whitespace. Before, it was read as BEIR with
  // document '0 DOC' (every measure 0); now it is an error naming file and line.
  throws(() => parseQrels("301\t0 DOC\t1\n", "q.txt"), /^DataFormatError: q.txt:1: line mixes tab/);
  // A BEIR file (by its header) with such a line: the id would hold a space.
  throws(
    () => parseQrels("query-id\tcorpus-id\tscore\n1\td1\t1\n301\t0 DOC\t1\n", "q.tsv"),
    /^DataFormatError: q.tsv:3: corpus-id '0 DOC' contains whitespace.*BEIR header on line 1/,
  );
  throws(
    () => parseBeirQrels("query-id\tcorpus-id\tscore\n1 x\td1\t1\n", "q.tsv"),
    /q.tsv:2: query-id '1 x' contains whitespace/,
  );
  // Mixed files: the first content line decides, and the error says so.
  throws(
    () => parseQrels("# c\n1\td1\t1\n1 0 d2 1\n", "m.txt"),
    /^DataFormatError: m.txt:3: expected 3 tab-separated fields .*line 2 has 3 tab-separated fields \(headerless BEIR TSV\).*looks like TREC qrels/,
  );
  throws(
    () => parseQrels("1 0 d2 1\n1\td1\t1\n", "m.txt"),
    /^DataFormatError: m.txt:2: expected 4 whitespace-separated fields .*read as TREC qrels: line 1 is not BEIR TSV.*looks like BEIR TSV/,
  );
  // Tab-separated TREC qrels stay TREC.
  deepStrictEqual(parseQrels("1\t0\td1\t1\n"), parseQrels("1 0 d1 1\n"));
});

Deno.test("readQrels decides per file on disk too, and names the path", async () => {
  await withFile("q.txt", "1\td1\t1\n2 0 d2 1\n", async (p) => {
    await rejects(readQrels(p), errorAt(p, 2, /headerless BEIR/));
  });
  await withFile("q.txt", "\n301\t0 DOC\t1\n", async (p) => {
    await rejects(readQrels(p), errorAt(p, 2, /mixes tab and space separators/));
  });
});

Deno.test("numeric _ids beyond 2^53 are errors, not silently rounded", async () => {
  // Before: 12345678901234567890 became the id '12345678901234567000' (and ...891 the same).
  await withFile(
    "corpus.jsonl",
    `{"_id": 1, "text": "a"}\n{"_id": 12345678901234567890, "text": "b"}\n`,
    async (p) => {
      await rejects(
        readBeirCorpus(p),
        errorAt(p, 2, /numeric "_id" is beyond 2\^53 - 1.*write the id as a JSON string/),
      );
    },
  );
  await withFile("queries.jsonl", `{"id": 12345678901234567890, "text": "q"}\n`, async (p) => {
    await rejects(readBeirQueries(p), errorAt(p, 1, /numeric "id" is beyond 2\^53/));
  });
  await withFile("corpus.jsonl", `{"_id": 2.5, "text": "a"}\n`, async (p) => {
    await rejects(readBeirCorpus(p), errorAt(p, 1, /numeric "_id" is not an integer/));
  });
  // Safe integers still read as their decimal text.
  await withFile("corpus.jsonl", `{"_id": 9007199254740991, "text": "a"}\n`, async (p) => {
    deepStrictEqual((await readBeirCorpus(p)).map((d) => d.id), ["9007199254740991"]);
  });
});

Deno.test("invalid UTF-8 in a BEIR corpus, queries or qrels is an error at its line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const raw = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
    // Before: both ids read as 'd\uFFFD', and the second line was a "duplicate" of the first,
    // or (in qrels) one judgement silently replaced another.
    const files: [string, string, (p: string) => Promise<unknown>, number][] = [
      [
        "corpus.jsonl",
        `{"_id": "d0", "text": "ok"}\n{"_id": "d\xff", "text": "a"}\n`,
        readBeirCorpus,
        2,
      ],
      ["queries.jsonl", `{"_id": "q1", "text": "caf\xe9"}\n`, readBeirQueries, 1],
      ["test.tsv", "query-id\tcorpus-id\tscore\nq1\td\xff\t1\nq1\td\xfe\t0\n", readBeirQrels, 2],
      ["auto.tsv", "q1\td\xff\t1\n", readQrels, 1],
    ];
    for (const [name, text, read, line] of files) {
      await Deno.writeFile(`${dir}/${name}`, raw(text));
      await rejects(read(`${dir}/${name}`), errorAt(`${dir}/${name}`, line, /invalid UTF-8/));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// MS MARCO TSV readers on small files: collection, queries, qrels, triples, runs; errors name
// file and line; an MS MARCO run scores with the official MRR@10 by its rank column.

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import {
  iterMsMarcoTripleLines,
  iterMsMarcoTriples,
  readMsMarcoCollection,
  readMsMarcoQrels,
  readMsMarcoQueries,
  readMsMarcoRun,
} from "../src/data/msmarco.ts";
import { msmarcoMrr10 } from "../src/eval/metrics.ts";

async function withFiles(files: Record<string, string>, f: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function at(path: string, line: number, re: RegExp) {
  return (e: Error) => {
    ok(e.message.startsWith(`${path}:${line}: `) && re.test(e.message), e.message);
    return true;
  };
}

Deno.test("MS MARCO files read, and a run is ranked by its rank column", async () => {
  await withFiles({
    "collection.tsv": "0\tThe first passage.\n1\tSecond\twith no tab? no: three fields\n",
    "collection_ok.tsv": "0\tThe first passage.\n7\tSeventh.\n",
    "queries.dev.tsv": "100\twhat is a passage\n200\twho\n",
    "qrels.dev.tsv": "100\t0\t7\t1\n200\t0\t0\t1\n",
    "triples.tsv": "q text\tpos text\tneg text\n",
    "run.tsv": "100\t0\t2\n100\t7\t1\n" +
      Array.from({ length: 11 }, (_, i) => `200\t${i === 10 ? 0 : 100 + i}\t${i + 1}\n`).join(""),
  }, async (d) => {
    await rejects(
      readMsMarcoCollection(`${d}/collection.tsv`),
      at(`${d}/collection.tsv`, 2, /expected 2 tab-separated/),
    );
    const coll = await readMsMarcoCollection(`${d}/collection_ok.tsv`);
    strictEqual(coll.get("7"), "Seventh.");
    const queries = await readMsMarcoQueries(`${d}/queries.dev.tsv`);
    strictEqual(queries.get("200"), "who");
    const qrels = await readMsMarcoQrels(`${d}/qrels.dev.tsv`);
    strictEqual(qrels.get("100")!.get("7"), 1);
    const triples = [];
    for await (const t of iterMsMarcoTriples(`${d}/triples.tsv`)) triples.push(t);
    deepStrictEqual(triples, [["q text", "pos text", "neg text"]]);
    const run = await readMsMarcoRun(`${d}/run.tsv`);
    // q100: relevant 7 at rank 1 -> 1; q200: relevant 0 at rank 11 -> 0. MRR@10 = 1/2.
    strictEqual(msmarcoMrr10(qrels, run).msmarco_mrr_10, 0.5);
  });
});

Deno.test("MS MARCO errors: duplicate ids, passages ranked twice, bad ranks", async () => {
  await withFiles({
    "q.tsv": "1\ta\n2\tb\n1\tc\n",
    "dup.tsv": "1\t5\t1\n1\t5\t2\n",
    "rank.tsv": "1\t5\t1\n1\t6\tfirst\n",
    "samerank.tsv": "1\t5\t1\n1\t6\t1\n",
    "tri.tsv": "a\tb\n",
    "gap.tsv": "1\t5\t1\n1\t6\t3\n",
  }, async (d) => {
    await rejects(
      readMsMarcoQueries(`${d}/q.tsv`),
      at(`${d}/q.tsv`, 3, /duplicate id '1' \(first on line 1\)/),
    );
    await rejects(
      readMsMarcoRun(`${d}/dup.tsv`),
      at(`${d}/dup.tsv`, 2, /passage '5' ranked twice/),
    );
    await rejects(readMsMarcoRun(`${d}/rank.tsv`), at(`${d}/rank.tsv`, 2, /rank 'first'/));
    await rejects(
      readMsMarcoRun(`${d}/samerank.tsv`),
      at(`${d}/samerank.tsv`, 2, /rank 1 used twice/),
    );
    await rejects(
      readMsMarcoRun(`${d}/gap.tsv`),
      /gap.tsv: ranks of query '1' are not 1..2: rank 2 is missing/,
    );
    await rejects(
      (async () => {
        for await (const _ of iterMsMarcoTriples(`${d}/tri.tsv`)) { /* consume */ }
      })(),
      at(`${d}/tri.tsv`, 1, /expected 3 tab-separated/),
    );
  });
});

Deno.test("MS MARCO ids with whitespace inside and ranks in other notations are errors", async () => {
  await withFiles({
    "coll.tsv": "0\tok\n7 8\tid with a space\n",
    "run_id.tsv": "1\t5\t1\n1\t6 7\t2\n",
    "run_hex.tsv": "1\t5\t1\n1\t6\t0x2\n",
    "run_exp.tsv": "1\t5\t1e0\n",
  }, async (d) => {
    await rejects(
      readMsMarcoCollection(`${d}/coll.tsv`),
      at(`${d}/coll.tsv`, 2, /id '7 8' contains whitespace/),
    );
    await rejects(
      readMsMarcoRun(`${d}/run_id.tsv`),
      at(`${d}/run_id.tsv`, 2, /pid '6 7' contains whitespace/),
    );
    await rejects(readMsMarcoRun(`${d}/run_hex.tsv`), at(`${d}/run_hex.tsv`, 2, /rank '0x2'/));
    await rejects(readMsMarcoRun(`${d}/run_exp.tsv`), at(`${d}/run_exp.tsv`, 1, /rank '1e0'/));
  });
});

Deno.test("MS MARCO: invalid UTF-8 is an error at its line; triples carry their file line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const raw = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
    // Before: 'caf\xe9' read as 'caf\uFFFD' (Latin-1 text taken for UTF-8, silently).
    await Deno.writeFile(`${dir}/coll.tsv`, raw("1\tcafe\n2\tcaf\xe9\n"));
    await rejects(readMsMarcoCollection(`${dir}/coll.tsv`), at(`${dir}/coll.tsv`, 2, /UTF-8/));
    await Deno.writeFile(`${dir}/run.tsv`, raw("1\tp\xff\t1\n1\tp\xfe\t2\n"));
    await rejects(readMsMarcoRun(`${dir}/run.tsv`), at(`${dir}/run.tsv`, 1, /invalid UTF-8/));
    await Deno.writeTextFile(`${dir}/tri.tsv`, "q1\tp1\tp2\n\nq2\tp3\tp1\n");
    const lines = [];
    for await (const t of iterMsMarcoTripleLines(`${dir}/tri.tsv`)) lines.push(t);
    deepStrictEqual(lines, [
      { triple: ["q1", "p1", "p2"], lineNo: 1 },
      { triple: ["q2", "p3", "p1"], lineNo: 3 },
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

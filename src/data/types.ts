/**
 * Shared types of the data layer: relevance judgements, runs, and the error raised for a
 * malformed input file.
 *
 * @module
 */

/**
 * Relevance judgements: query id -> document id -> relevance grade (an integer; negative
 * grades mean "in the pool but not judged", as in trec_eval).
 */
export type Qrels = Map<string, Map<string, number>>;

/**
 * The documents retrieved for one query, with their scores, in any order: evaluation ranks by
 * score, as trec_eval does (higher first, ties broken by document id, descending).
 */
export interface Ranking {
  /** Document ids; must be unique within a query. */
  docIds: string[];
  /** One score per document id, same index. */
  scores: ArrayLike<number>;
}

/** A retrieval run: query id -> its ranking. */
export type Run = Map<string, Ranking>;

/** A document as BEIR stores it. */
export interface Doc {
  /** Document id (`_id` in BEIR). */
  id: string;
  /** Title; empty string when the corpus has none. */
  title: string;
  /** Body text. */
  text: string;
}

/** The text a document is encoded as: `title + " " + text`, or the text alone without a title. */
export function docText(doc: Doc): string {
  return doc.title ? `${doc.title} ${doc.text}` : doc.text;
}

/**
 * A malformed input file. The message names the file and, where it applies, the 1-based line
 * number, as `file:line: what is wrong`.
 */
export class DataFormatError extends Error {
  /** The file that was being read. */
  readonly file: string;
  /** 1-based line number, or 0 when the error concerns the file as a whole. */
  readonly line: number;

  /** Builds the error; `line` 0 leaves the line number out of the message. */
  constructor(file: string, line: number, message: string) {
    super(line > 0 ? `${file}:${line}: ${message}` : `${file}: ${message}`);
    this.name = "DataFormatError";
    this.file = file;
    this.line = line;
  }
}

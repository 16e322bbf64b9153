/**
 * Uniform parameter blocks: packed from named fields ({@link params}) and checked against the
 * kernel file's WGSL `struct Params` ({@link parseParamsStruct}, {@link checkParams}) the first
 * time a block of that shape is dispatched with one of its pipelines, so a launcher that packs a
 * field out of order, forgets one or gives it the wrong type fails with the file and the field
 * instead of running with garbage.
 *
 * Convention: a kernel file declares at most one uniform block, `struct Params`, of u32, i32 and
 * f32 fields, bound as `@group(0) @binding(0) var<uniform> p: Params;`.
 *
 * @module
 */

/** A WGSL scalar type a parameter field may have. */
export type ParamType = "u32" | "i32" | "f32";

/** A value marked to be packed as `f32`. */
export interface F32Field {
  /** The value, stored as f32. */
  readonly f32: number;
}

/** A value marked to be packed as `i32`. */
export interface I32Field {
  /** The value, stored as i32. */
  readonly i32: number;
}

/** A field value: a number or boolean packs as `u32` (a boolean as 0/1); see {@link f32}, {@link i32}. */
export type ParamValue = number | boolean | F32Field | I32Field;

/** Marks a value to be packed as `f32`. */
export function f32(value: number): F32Field {
  return { f32: value };
}

/** Marks a value to be packed as `i32`. */
export function i32(value: number): I32Field {
  return { i32: value };
}

/** One packed field. */
export interface PackedField {
  /** The field's name (the WGSL struct member it must match). */
  readonly name: string;
  /** The type it was packed as. */
  readonly type: ParamType;
  /** The value (as given; f32 fields are rounded when packed). */
  readonly value: number;
}

/** A packed uniform block: its named fields in order and their bytes. */
export interface ParamBlock {
  /** The fields, in packing order. */
  readonly fields: readonly PackedField[];
  /** The bytes, 4 per field, padded to a multiple of 16. */
  readonly bytes: ArrayBuffer;
  /** `name:type,...`: blocks with the same signature have the same layout. */
  readonly signature: string;
}

/**
 * Packs a uniform block from named fields, in the order written (which must be the order of the
 * kernel's `struct Params`; the check at dispatch says which field differs). Every field of the
 * struct must be given, padding included.
 *
 * @example
 * ```ts
 * dispatch(gpu, { pipeline: p, buffers: [x, y], params: params({ rows, D, eps: f32(1e-12) }),
 *   workgroups: [rows] });
 * ```
 */
export function params(fields: Readonly<Record<string, ParamValue>>): ParamBlock {
  const names = Object.keys(fields);
  const bytes = new ArrayBuffer(Math.max(16, Math.ceil(names.length / 4) * 16));
  const view = new DataView(bytes);
  const packed = names.map((name, i): PackedField => {
    const field = fields[name];
    if (typeof field === "number" || typeof field === "boolean") {
      const value = Number(field);
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
        throw new RangeError(`params: u32 field ${name} out of range: ${field}`);
      }
      view.setUint32(i * 4, value, true);
      return { name, type: "u32", value };
    }
    if ("f32" in field) {
      view.setFloat32(i * 4, field.f32, true);
      return { name, type: "f32", value: field.f32 };
    }
    if (!Number.isInteger(field.i32) || field.i32 < -0x80000000 || field.i32 > 0x7fffffff) {
      throw new RangeError(`params: i32 field ${name} out of range: ${field.i32}`);
    }
    view.setInt32(i * 4, field.i32, true);
    return { name, type: "i32", value: field.i32 };
  });
  return { fields: packed, bytes, signature: packed.map((f) => `${f.name}:${f.type}`).join(",") };
}

/** One member of a WGSL `struct Params`. */
export interface StructField {
  /** The member's name. */
  readonly name: string;
  /** Its type. */
  readonly type: ParamType;
  /** The 1-based line of the source it was parsed from (before any mapping). */
  readonly line: number;
}

/** Raised when a kernel's `struct Params` cannot be parsed, or a packed block does not match it. */
export class KernelParamsError extends Error {
  /**
   * Creates the error.
   * @param message the full message, starting with `kernels/FILE:LINE:` or `kernels/FILE:`
   */
  constructor(message: string) {
    super(message);
    this.name = "KernelParamsError";
  }
}

/** Blanks `//` and (nested) block comments, keeping every newline, so offsets keep their line. */
function blankComments(code: string): string {
  let out = "";
  let i = 0;
  let depth = 0;
  while (i < code.length) {
    const two = code.slice(i, i + 2);
    if (depth === 0 && two === "//") {
      while (i < code.length && code[i] !== "\n") {
        out += " ";
        i++;
      }
    } else if (two === "/*") {
      depth++;
      out += "  ";
      i += 2;
    } else if (depth > 0 && two === "*/") {
      depth--;
      out += "  ";
      i += 2;
    } else {
      out += depth > 0 && code[i] !== "\n" ? " " : code[i];
      i++;
    }
  }
  return out;
}

function lineAt(code: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (code.charCodeAt(i) === 10) line++;
  return line;
}

/**
 * Parses the `struct Params` of a WGSL source into its members (names, u32/i32/f32 types, source
 * lines), or null when the source declares none. Also checks the convention that the only
 * uniform block is a `Params`. `where(line)` names a source line in errors (`kernels/FILE:LINE`).
 */
export function parseParamsStruct(
  code: string,
  where: (line: number) => string,
): StructField[] | null {
  const text = blankComments(code);
  for (const m of text.matchAll(/var\s*<\s*uniform\s*>\s*([A-Za-z_]\w*)\s*:\s*([A-Za-z_]\w*)/g)) {
    if (m[2] !== "Params") {
      throw new KernelParamsError(
        `${where(lineAt(text, m.index!))}: uniform ${m[1]} has type ${m[2]}: a kernel's only ` +
          "uniform block is its struct Params",
      );
    }
  }
  const head = /\bstruct\s+Params\s*\{/.exec(text);
  if (!head) return null;
  const start = head.index + head[0].length;
  const end = text.indexOf("}", start);
  if (end < 0) {
    throw new KernelParamsError(`${where(lineAt(text, head.index))}: unclosed struct Params`);
  }
  const fields: StructField[] = [];
  let offset = start;
  for (const part of text.slice(start, end).split(",")) {
    const line = lineAt(text, offset + (part.length - part.trimStart().length));
    offset += part.length + 1;
    if (part.trim() === "") continue;
    const m = /^\s*([A-Za-z_]\w*)\s*:\s*([A-Za-z_][\w<>\s]*?)\s*$/.exec(part);
    if (!m) {
      throw new KernelParamsError(
        `${where(line)}: struct Params member "${part.trim()}" is not a plain \`name: type\` ` +
          "(attributes change the layout and are not supported)",
      );
    }
    if (m[2] !== "u32" && m[2] !== "i32" && m[2] !== "f32") {
      throw new KernelParamsError(
        `${where(line)}: struct Params member ${m[1]} has type ${m[2]}: only u32, i32 and f32 ` +
          "members are supported",
      );
    }
    fields.push({ name: m[1], type: m[2], line });
  }
  return fields;
}

/**
 * Checks a packed block against a kernel's `struct Params` (names, order, types); throws a
 * {@link KernelParamsError} naming the kernel file (`where()`, or `where(line)` of the struct
 * member concerned) and the field.
 */
export function checkParams(
  struct: readonly StructField[],
  block: ParamBlock,
  where: (line?: number) => string,
): void {
  const packed = block.fields;
  const describe = (f: { name: string; type: string }) => `${f.name}: ${f.type}`;
  for (let i = 0; i < Math.max(struct.length, packed.length); i++) {
    const want = struct[i], got = packed[i];
    if (!got) {
      throw new KernelParamsError(
        `${where(want.line)}: struct Params member ${describe(want)} was not packed ` +
          `(the launcher gave ${packed.length} of ${struct.length} fields)`,
      );
    }
    if (!want) {
      throw new KernelParamsError(
        `${where()}: the launcher packed field ${got.name}, which struct Params does not declare ` +
          `(it has ${struct.length} members)`,
      );
    }
    if (want.name !== got.name) {
      const known = struct.find((f) => f.name === got.name);
      throw new KernelParamsError(
        `${where(want.line)}: struct Params member ${i + 1} is ${describe(want)}, the launcher ` +
          `packed ${got.name} there` +
          (known
            ? " (struct Params declares it elsewhere: the order differs)"
            : " (no such member)"),
      );
    }
    if (want.type !== got.type) {
      throw new KernelParamsError(
        `${where(want.line)}: struct Params member ${describe(want)} was packed as ${got.type}` +
          (want.type === "f32"
            ? " (wrap it in f32())"
            : want.type === "i32"
            ? " (wrap it in i32())"
            : ""),
      );
    }
  }
}

/**
 * Packing of uniform parameter blocks: WGSL structs of 4-byte scalars, in declaration order.
 *
 * @module
 */

/** A float field; plain numbers are packed as `u32`. */
export interface F32Field {
  /** The value, stored as f32. */
  readonly f32: number;
}

/** Marks a value to be packed as `f32`. */
export function f32(value: number): F32Field {
  return { f32: value };
}

/** Marks a value to be packed as `i32`. */
export function i32(value: number): { readonly i32: number } {
  return { i32: value };
}

/** Packs fields (u32 numbers, {@link f32}, {@link i32}) into a 16-byte-aligned uniform block. */
export function packParams(
  ...fields: (number | F32Field | { readonly i32: number })[]
): ArrayBuffer {
  const bytes = new ArrayBuffer(Math.max(16, Math.ceil(fields.length / 4) * 16));
  const view = new DataView(bytes);
  fields.forEach((field, i) => {
    if (typeof field === "number") {
      if (!Number.isInteger(field) || field < 0 || field > 0xffffffff) {
        throw new RangeError(`u32 parameter ${i} out of range: ${field}`);
      }
      view.setUint32(i * 4, field, true);
    } else if ("f32" in field) view.setFloat32(i * 4, field.f32, true);
    else view.setInt32(i * 4, field.i32, true);
  });
  return bytes;
}

// Activations: GELU (exact erf form, as BERT uses), ReLU, tanh; forward and backward.
// Dimension legend: n elements, flat; one invocation per element on a flat index that the host
// may fold into two grid dimensions (src/gpu/kernels.ts grid1d): i = flat_index(gid, nwg).
// Backward kernels ACCUMULATE (+=) into dx.

struct Params {
  n: u32,
}

override WG: u32; // invocations per workgroup (src/ops/activation.ts)
const INV_SQRT2: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> in1: array<f32>;   // x (forward) or dy (backward)
@group(0) @binding(2) var<storage, read_write> out2: array<f32>; // y (forward)
@group(0) @binding(2) var<storage, read> in2: array<f32>;   // saved x or y (backward)
@group(0) @binding(3) var<storage, read_write> out3: array<f32>; // dx (backward)

//! include "prelude/grid.wgsl"

// Φ(-a) = erfc(a/√2)/2 for a >= 0, the lower tail of the standard normal CDF. erfc is Numerical
// Recipes' Chebyshev fit (erfcc), fractional error < 1.2e-7 in exact arithmetic for all
// arguments >= 0, so it keeps RELATIVE accuracy in the tail where erfc is tiny
// (Abramowitz-Stegun 7.1.26 has 1.5e-7 ABSOLUTE error: a 25% relative error of GELU at x = -5).
// The f32 evaluation keeps that: the exponent -a²/2 is split so its large part is exact (a_hi
// keeps 12 significant bits, so a_hi² is exact), rather than squaring a rounded a/√2, and exp
// is the ~1-ulp exp_accurate below. tests/activation_test.ts measures the resulting GELU error.
fn normal_tail(a: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.5 * INV_SQRT2 * a);
  let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277))))))));
  let a_hi = bitcast<f32>(bitcast<u32>(a) & 0xfffff000u);
  // -a²/2 = -a_hi²/2 + (a_hi - a)(a_hi + a)/2
  return 0.5 * t * exp_accurate(-0.5 * a_hi * a_hi) *
    exp_accurate(0.5 * (a_hi - a) * (a_hi + a) + poly);
}

// exp(a) to ~1 ulp for any a: WGSL only promises exp to 3 + 2|a| ulps (llvmpipe's error does
// grow so, 1.6e-5 relative at a = -72), which would spoil the relative accuracy of the tail.
// Cody-Waite reduction a = k·ln2 + r, |r| <= ln2/2 (ln2 split so k·LN2_HI is exact), then a
// degree-7 Taylor polynomial (truncation < 6e-9 relative) and ldexp. Callers here pass a <= 0.
fn exp_accurate(a: f32) -> f32 {
  let LN2_HI = 0.693145751953125;      // 0x3f317200: k·LN2_HI is exact for |k| < 2^15
  let LN2_LO = 1.428606765330187e-06;
  let c = clamp(a, -104.0, 88.5); // exp(-104) underflows to 0, exp(88.5) is finite
  let k = round(c * 1.4426950408889634);
  let r = (c - k * LN2_HI) - k * LN2_LO;
  let e = 1.0 + r * (1.0 + r * (0.5 + r * (0.16666666666666666 + r * (0.041666666666666664 +
    r * (0.008333333333333333 + r * (0.001388888888888889 + r * 0.0001984126984126984))))));
  return ldexp(e, i32(k));
}

// Φ(x), the standard normal CDF.
fn normal_cdf(x: f32) -> f32 {
  let tail = normal_tail(abs(x)); // Φ(-|x|)
  return select(tail, 1.0 - tail, x >= 0.0);
}

// tanh without overflow: exp is only taken of -2|x| <= 0. Below |x| = 0.25 a Taylor polynomial
// (through x^9, truncation < 1e-8 relative) avoids the cancellation in 1 - exp(-2|x|).
fn tanh_safe(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.25) {
    let x2 = x * x;
    return x * (1.0 + x2 * (-0.33333333333 + x2 * (0.13333333333 +
      x2 * (-0.053968253968 + x2 * 0.021869488536))));
  }
  let t = exp(-2.0 * a);
  return sign(x) * (1.0 - t) / (1.0 + t);
}

// y = x · Φ(x)
@compute @workgroup_size(WG)
fn gelu_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let x = in1[i];
  out2[i] = x * normal_cdf(x);
}

// dx += dy · (Φ(x) + x · φ(x)), φ(x) = exp(-x²/2)/√(2π); reads the saved input x.
@compute @workgroup_size(WG)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let x = in2[i];
  let pdf = INV_SQRT_2PI * exp_accurate(-0.5 * x * x);
  out3[i] += in1[i] * (normal_cdf(x) + x * pdf);
}

// y = max(x, 0)
@compute @workgroup_size(WG)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  out2[i] = max(in1[i], 0.0);
}

// dx += dy · [x > 0] (subgradient 0 at x = 0); reads the saved input x.
@compute @workgroup_size(WG)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  out3[i] += select(0.0, in1[i], in2[i] > 0.0);
}

// y = tanh(x)
@compute @workgroup_size(WG)
fn tanh_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  out2[i] = tanh_safe(in1[i]);
}

// dx += dy · (1 - y²); reads the saved output y.
@compute @workgroup_size(WG)
fn tanh_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= p.n) { return; }
  let y = in2[i];
  out3[i] += in1[i] * (1.0 - y * y);
}

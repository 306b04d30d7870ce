/**
 * The tests' seeded generators: the same seed gives the same stream on every machine, so a generated model, text
 * or fuzz input that fails is reproduced by its seed. Two streams, because committed fixtures and the premises of
 * tests (a base model below the uniform loss, a planted logit) were made with each: mulberry32 for catalogs and
 * fuzz inputs, xorshift32 for weights and activations.
 */

/** mulberry32: uniform values in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** xorshift32: the next 32-bit state, never 0 (seed 0 counts as 1). */
function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

/** `n` uniform values in [-1, 1). */
export function randomValues(n: number, seed: number): Float32Array {
  const next = xorshift32(seed);
  return Float32Array.from({ length: n }, () => (next() / 2 ** 32) * 2 - 1);
}

/** Standard normal values (Box–Muller over uniforms in (0, 1)). */
export function normals(seed: number): () => number {
  const next = xorshift32(seed);
  const u = () => (next() + 1) / (2 ** 32 + 2);
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

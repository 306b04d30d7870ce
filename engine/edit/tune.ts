/**
 * Derivative-free tuning of edit scales. One scalar: a coarse grid over [a, b] finds the best
 * bracket, then Brent's method (golden-section steps with parabolic interpolation) refines it;
 * the result never leaves [a, b]. Several scalars: coordinate search, one bracketed 1-D
 * search per coordinate per sweep. Every evaluation is recorded in the trace.
 */
import { ScalpelError } from '../errors';

export interface TraceEntry {
  x: number[];
  f: number;
}

export interface TuneResult {
  x: number[];
  f: number;
  trace: TraceEntry[];
  evaluations: number;
}

export interface TuneOptions {
  /** Grid points over each range before refining (default 9). */
  grid?: number;
  /** Absolute tolerance on x (default 1e-3 of the range). */
  tolerance?: number;
  /** Brent iterations per 1-D search (default 40). */
  maxIterations?: number;
  /** Coordinate-search sweeps over all scalars (default 3). */
  sweeps?: number;
}

const GOLDEN = 0.3819660112501051; // (3 − √5) / 2

/** Minimizes a unimodal-on-the-bracket f over [a, b] (Brent 1973, "localmin"). */
export async function brent(f: (x: number) => Promise<number>, a: number, b: number, tol: number, maxIterations: number): Promise<{ x: number; f: number }> {
  let x = a + GOLDEN * (b - a);
  let w = x;
  let v = x;
  let fx = await f(x);
  let fw = fx;
  let fv = fx;
  let d = 0;
  let e = 0;
  for (let iter = 0; iter < maxIterations; iter++) {
    const m = 0.5 * (a + b);
    const tol1 = 1e-10 * Math.abs(x) + tol / 3;
    const tol2 = 2 * tol1;
    if (Math.abs(x - m) <= tol2 - 0.5 * (b - a)) break;
    let useGolden = true;
    if (Math.abs(e) > tol1) {
      // Parabola through (v, fv), (w, fw), (x, fx).
      let r = (x - w) * (fx - fv);
      let q = (x - v) * (fx - fw);
      let p = (x - v) * q - (x - w) * r;
      q = 2 * (q - r);
      if (q > 0) p = -p;
      else q = -q;
      r = e;
      e = d;
      if (Math.abs(p) < Math.abs(0.5 * q * r) && p > q * (a - x) && p < q * (b - x)) {
        d = p / q;
        const u = x + d;
        if (u - a < tol2 || b - u < tol2) d = x < m ? tol1 : -tol1;
        useGolden = false;
      }
    }
    if (useGolden) {
      e = (x < m ? b : a) - x;
      d = GOLDEN * e;
    }
    const u = Math.abs(d) >= tol1 ? x + d : x + (d > 0 ? tol1 : -tol1);
    const fu = await f(u);
    if (fu <= fx) {
      if (u < x) b = x;
      else a = x;
      v = w; fv = fw;
      w = x; fw = fx;
      x = u; fx = fu;
    } else {
      if (u < x) a = u;
      else b = u;
      if (fu <= fw || w === x) {
        v = w; fv = fw;
        w = u; fw = fu;
      } else if (fu <= fv || v === x || v === w) {
        v = u; fv = fu;
      }
    }
  }
  return { x, f: fx };
}

function checkRange(lo: number, hi: number, i: number): void {
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(lo < hi)) throw new ScalpelError(`tuning range ${i + 1} is [${lo}, ${hi}]; it needs two finite bounds, low < high`);
}

/** Bracketed 1-D minimization on [lo, hi]: grid, then Brent between the best point's neighbours. */
async function lineSearch(f: (x: number) => Promise<number>, lo: number, hi: number, opts: Required<TuneOptions>): Promise<{ x: number; f: number }> {
  const n = Math.max(3, opts.grid);
  const xs = Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));
  const fs: number[] = [];
  for (const x of xs) fs.push(await f(x));
  let best = 0;
  for (let i = 1; i < n; i++) if (fs[i] < fs[best]) best = i;
  const a = xs[Math.max(0, best - 1)];
  const b = xs[Math.min(n - 1, best + 1)];
  const refined = await brent(f, a, b, opts.tolerance, opts.maxIterations);
  return refined.f < fs[best] ? refined : { x: xs[best], f: fs[best] };
}

/**
 * Minimizes f over the box `ranges` (one [lo, hi] per scalar), starting from `start`
 * (default: each range's midpoint, or 1 when 1 is inside: "no edit").
 */
export async function minimize(f: (x: number[]) => Promise<number>, ranges: [number, number][], opts: TuneOptions & { start?: number[] } = {}): Promise<TuneResult> {
  if (!ranges.length) throw new ScalpelError('nothing to tune: no scale has a range');
  ranges.forEach(([lo, hi], i) => checkRange(lo, hi, i));
  const span = Math.min(...ranges.map(([lo, hi]) => hi - lo));
  const o: Required<TuneOptions> = {
    grid: opts.grid ?? 9,
    tolerance: opts.tolerance ?? span * 1e-3,
    maxIterations: opts.maxIterations ?? 40,
    sweeps: opts.sweeps ?? 3,
  };
  const trace: TraceEntry[] = [];
  const cache = new Map<string, number>();
  const evalAt = async (x: number[]) => {
    const key = x.join(',');
    const hit = cache.get(key);
    if (hit !== undefined) return hit;
    const v = await f(x);
    const fx = Number.isNaN(v) ? Infinity : v;
    cache.set(key, fx);
    trace.push({ x: x.slice(), f: fx });
    return fx;
  };
  const x = opts.start?.slice() ?? ranges.map(([lo, hi]) => (lo <= 1 && 1 <= hi ? 1 : (lo + hi) / 2));
  let fx = await evalAt(x);
  const sweeps = ranges.length === 1 ? 1 : o.sweeps;
  for (let s = 0; s < sweeps; s++) {
    const before = fx;
    for (let i = 0; i < ranges.length; i++) {
      const r = await lineSearch((xi) => evalAt(x.map((v, j) => (j === i ? xi : v))), ranges[i][0], ranges[i][1], o);
      if (r.f < fx) {
        x[i] = r.x;
        fx = r.f;
      }
    }
    if (fx >= before) break;
  }
  return { x, f: fx, trace, evaluations: trace.length };
}

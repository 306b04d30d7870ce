import { test } from 'node:test';
import assert from 'node:assert/strict';
import { minimize } from '../../engine/edit/tune';

test('1-D: finds the minimum of a known function to the tolerance, with a trace of every evaluation', async () => {
  let calls = 0;
  const r = await minimize(async ([x]) => {
    calls++;
    return (x - 0.37) ** 2 + Math.sin(3 * x) * 0.01;
  }, [[-2, 3]], { tolerance: 1e-5 });
  // Minimum of (x − 0.37)² + 0.01 sin 3x: derivative 2(x − 0.37) + 0.03 cos 3x = 0.
  const root = (() => {
    let lo = 0, hi = 1;
    for (let i = 0; i < 100; i++) {
      const m = (lo + hi) / 2;
      if (2 * (m - 0.37) + 0.03 * Math.cos(3 * m) > 0) hi = m;
      else lo = m;
    }
    return lo;
  })();
  assert.ok(Math.abs(r.x[0] - root) < 1e-4, `${r.x[0]} vs ${root}`);
  assert.equal(r.trace.length, calls);
  assert.ok(r.evaluations < 60);
});

test('1-D: respects the range (optimum outside it lands on the bound) and picks the global bracket', async () => {
  assert.equal((await minimize(async ([x]) => x, [[0.5, 2]])).x[0], 0.5);
  assert.equal((await minimize(async ([x]) => -x, [[0.5, 2]])).x[0], 2);
  // Two wells; the deeper one at x = 2.5 wins even though the start (1) sits near the other.
  const r = await minimize(async ([x]) => Math.min((x - 0.8) ** 2, (x - 2.5) ** 2 - 0.5), [[-1, 4]]);
  assert.ok(Math.abs(r.x[0] - 2.5) < 1e-2, String(r.x[0]));
  for (const e of r.trace) assert.ok(e.x[0] >= -1 && e.x[0] <= 4);
});

test('several scalars: coordinate search reaches the minimum of a separable and a coupled quadratic', async () => {
  const sep = await minimize(async ([a, b]) => (a - 1.5) ** 2 + (b + 0.5) ** 2, [[-3, 3], [-3, 3]]);
  assert.ok(Math.abs(sep.x[0] - 1.5) < 1e-2 && Math.abs(sep.x[1] + 0.5) < 1e-2, String(sep.x));
  const coupled = await minimize(async ([a, b]) => (a - 1) ** 2 + (b - 2) ** 2 + 0.5 * (a - 1) * (b - 2), [[-4, 4], [-4, 4]], { sweeps: 8 });
  assert.ok(Math.abs(coupled.x[0] - 1) < 0.05 && Math.abs(coupled.x[1] - 2) < 0.05, String(coupled.x));
});

test('a bad range is an error, NaN is treated as worst', async () => {
  await assert.rejects(minimize(async () => 0, [[2, 1]]), /low < high/);
  const r = await minimize(async ([x]) => (x > 0 ? NaN : (x + 1) ** 2), [[-3, 3]]);
  assert.ok(Math.abs(r.x[0] + 1) < 1e-2);
});

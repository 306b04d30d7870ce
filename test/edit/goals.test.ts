/**
 * Goals beside bounds (engine/edit/checks.ts): the bound decides pass or fail, the goal is measured and
 * reported as met or missed by how far, in the check's unit and in the check's direction.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Check, Measured, runCheck, violation } from '../../engine/edit/checks';

const measured = (base: number, edited: number): Measured => ({ name: 'd', base, edited, delta: edited - base });
const guard = (bound: number, goal: number, unit: Check['unit'] = 'nats'): Check => ({ kind: 'guard', guard: 'g', dataset: 'd', change: 'moves', op: '<=', bound, goal, unit });
const expect = (change: Check['change'], op: Check['op'], bound: number, goal: number, unit: Check['unit'] = 'nats'): Check => ({ kind: 'expect', edit: 'e', dataset: 'd', change, op, bound, goal, unit });

// [what, check, base loss, edited loss, pass, goal met, distance (the check's unit)]
const CASES: [string, Check, number, number, boolean, boolean, number][] = [
  ['a guard met by its goal', guard(0.35, 0.05), 4, 4.03, true, true, 0],
  ['a guard within its bound, its goal missed (Δ up)', guard(0.35, 0.05), 4.4569, 4.7794, true, false, 0.2725],
  ['a guard within its bound, its goal missed (Δ down: |Δ| counts)', guard(0.35, 0.05), 4, 3.8, true, false, 0.15],
  ['a guard failing its bound reports its goal too', guard(0.35, 0.05), 4, 4.5, false, false, 0.45],
  ['rises by >= 2, goal 4: met above the goal', expect('rises', '>=', 2, 4), 4.7, 9.17, true, true, 0],
  ['rises by >= 2, goal 4: passes, goal missed below it', expect('rises', '>=', 2, 4), 4, 7, true, false, 1],
  ['rises by >= 2, goal 4: fails, goal missed further', expect('rises', '>=', 2, 4), 4, 5.5, false, false, 2.5],
  ['falls by >= 0.1, goal 0.5: a fall of 0.3', expect('falls', '>=', 0.1, 0.5), 4, 3.7, true, false, 0.2],
  ['moves by <= 5 %, goal 1 %: 2 % of the base loss', expect('moves', '<=', 5, 1, '%'), 4, 4.08, true, false, 1],
  ['a guard within 10 %, goal 2 %: 1 % of the base loss', guard(10, 2, '%'), 4, 3.96, true, true, 0],
  ['is <= 9 nats, goal 8.5: the loss after the edit', expect('is', '<=', 9, 8.5), 4, 8.7, true, false, 0.2],
  ['is >= 12 bits, goal 13 bits: in bits', expect('is', '>=', 12, 13, 'bits'), 0, 12.5 * Math.LN2, true, false, 0.5],
];

for (const [what, check, base, edited, pass, met, distance] of CASES) {
  test(`goal: ${what}`, () => {
    const r = runCheck(check, measured(base, edited));
    assert.equal(r.pass, pass, r.message);
    assert.ok(r.goal, 'a check with a goal reports it');
    assert.equal(r.goal.goal, check.goal);
    assert.equal(r.goal.met, met, r.message);
    assert.ok(Math.abs(r.goal.distance - distance) < 1e-9, `distance ${r.goal.distance}, expected ${distance}`);
    const fmt = (v: number) => (check.unit === '%' ? `${v.toFixed(2)}%` : `${v.toFixed(4)} ${check.unit}`);
    assert.ok(r.message.endsWith(met ? `; goal ${fmt(check.goal!)} met` : `; goal ${fmt(check.goal!)} missed by ${fmt(distance)}`), r.message);
    assert.equal(r.message.includes('(failed)'), !pass, r.message);
  });
}

test('a goal never changes the verdict or the penalty: both come from the bound alone', () => {
  const d = measured(4, 4.5);
  const withGoal = guard(0.35, 0.05);
  const { goal: _, ...without } = withGoal;
  assert.equal(runCheck(withGoal, d).pass, runCheck(without, d).pass);
  assert.ok(Math.abs(violation(withGoal, d) - 0.15) < 1e-9, 'the penalty is the distance to the bound, not to the goal');
  assert.equal(runCheck(without, d).goal, undefined);
  assert.ok(!runCheck(without, d).message.includes('goal'));
});

test('a strict comparison misses a goal it only equals', () => {
  const r = runCheck({ kind: 'expect', edit: 'e', dataset: 'd', change: 'rises', op: '>', bound: 1, goal: 2, unit: 'nats' }, measured(4, 6));
  assert.equal(r.pass, true);
  assert.equal(r.goal?.met, false);
  assert.equal(r.goal?.distance, 0);
});

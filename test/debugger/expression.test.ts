import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScalpelError } from '../../engine/errors';
import { ExpressionHost, Value, evaluateExpression, parseExpression } from '../../debugger/expression';

/** A host where f(x) = x * 10, n = 3, and base(…) reads a host whose n is 1. */
function host(n: number, calls: string[] = []): ExpressionHost {
  return {
    name: (name, start) => {
      if (name === 'n') return n;
      throw new ScalpelError(`unknown ${name} at ${start}`);
    },
    call: async (name, args: Value[]) => {
      calls.push(name);
      return (args[0] as number) * 10;
    },
    side: (name) => (name === 'base' ? host(1, calls) : undefined),
  };
}

const run = async (text: string, calls?: string[]) => evaluateExpression(parseExpression(text), host(3, calls));

test('precedence: comparison binds tighter than not, not than and, and than or', async () => {
  assert.equal(await run('n > 2 and n < 4'), true);
  assert.equal(await run('not n > 5 and n == 3'), true);
  assert.equal(await run('n > 5 or n < 0 or n == 3'), true);
  assert.equal(await run('(n > 5 or n == 3) and not (n == 3)'), false);
  assert.equal(await run('f(n) >= 30'), true);
  assert.equal(await run('f(-2.5) < -24'), true);
  assert.equal(await run('"a" == "a"'), true);
});

test('base(…) evaluates its argument on the base side', async () => {
  assert.equal(await run('base(n)'), 1);
  assert.equal(await run('base(f(n)) < f(n)'), true);
});

test('and / or short-circuit: the right side is not evaluated when the left decides', async () => {
  const calls: string[] = [];
  assert.equal(await run('n > 5 and f(1) > 0', calls), false);
  assert.equal(await run('n < 5 or f(1) > 0', calls), true);
  assert.deepEqual(calls, []);
});

test('syntax errors are ScalpelErrors with the column of the problem', () => {
  const cases: [string, number, RegExp][] = [
    ['n >', 4, /expected a number, a string, a name or a call at the end/],
    ['f(1', 4, /expected "\)" at the end/],
    ['f(1 2)', 5, /expected "\)", found "2"/],
    ['n n', 3, /unexpected "n" after the expression/],
    ['"open', 1, /unterminated string/],
    ['n + 1', 3, /unexpected character "\+"/],
  ];
  for (const [text, column, why] of cases) {
    assert.throws(() => parseExpression(text), (e: unknown) => e instanceof ScalpelError && e.position?.column === column && why.test(e.message), text);
  }
});

test('comparing a string with a number is an error, not false', async () => {
  await assert.rejects(run('"a" > 1'), (e: unknown) => e instanceof ScalpelError && /compares numbers/.test(e.message));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ScalpelError } from '../../engine/errors';
import { LAUNCH_ATTRIBUTES, launchRuntime } from '../../debugger/launch';

const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'));

test('package.json declares the "scalpel" debugger with exactly the typed launch attributes', () => {
  const debuggers = pkg.contributes?.debuggers as { type: string; args?: string[]; configurationAttributes: { launch: { properties: Record<string, { type: string }> } } }[];
  const d = debuggers.find((x) => x.type === 'scalpel');
  assert.ok(d, 'contributes.debuggers has type "scalpel"');
  assert.deepEqual(d.args, ['dap']);
  const props = d.configurationAttributes.launch.properties;
  assert.deepEqual(Object.keys(props).sort(), Object.keys(LAUNCH_ATTRIBUTES).sort());
  for (const [key, type] of Object.entries(LAUNCH_ATTRIBUTES)) assert.equal(props[key].type, type, key);
  for (const required of ['spec', 'edit', 'input', 'example', 'position', 'stopOnEntry']) assert.ok(required in props, required);
});

test('launch attributes of the wrong type are rejected with the attribute named', async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ model: 'm', input: 'x', position: 1.5 }, /"position" must be an integer, not 1\.5/],
    [{ model: 'm', input: 7 }, /"input" must be a string, not 7/],
    [{ model: 'm', input: 'x', scales: [] }, /"scales" must be an object/],
    [{ model: 'm', input: 'x', stopOnEntry: 'yes' }, /"stopOnEntry" must be a boolean/],
  ];
  for (const [args, why] of cases) {
    await assert.rejects(launchRuntime(args), (e: unknown) => e instanceof ScalpelError && why.test(e.message), JSON.stringify(args));
  }
});

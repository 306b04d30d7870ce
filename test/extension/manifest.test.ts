// package.json's commands and menus against what extension/main.ts registers: a menu item naming no command, or a
// command nobody registers, shows a button that does nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const registered = [...fs.readFileSync(path.join(ROOT, 'extension', 'main.ts'), 'utf8').matchAll(/registerCommand\('([^']+)'/g)].map((m) => m[1]);

test('every contributed command is registered by the extension, and every menu item names a contributed command', () => {
  const declared = (pkg.contributes.commands as { command: string }[]).map((c) => c.command);
  assert.deepEqual(declared.filter((c) => !registered.includes(c)), []);
  const menus = pkg.contributes.menus as Record<string, { command: string }[]>;
  const dangling = Object.entries(menus).flatMap(([menu, items]) => items.filter((i) => !declared.includes(i.command)).map((i) => `${menu}: ${i.command}`));
  assert.deepEqual(dangling, []);
});

test('Show Geometry at This Stop is on the debug toolbar and a frame\'s Call Stack menu, for Scalpel sessions only', () => {
  const menus = pkg.contributes.menus as Record<string, { command: string; when?: string }[]>;
  for (const menu of ['debug/toolBar', 'debug/callstack/context', 'commandPalette']) {
    const item = menus[menu]?.find((i) => i.command === 'scalpel.showGeometryAtStop');
    assert.ok(item, `${menu} has it`);
    assert.match(item.when ?? '', /debugType == scalpel/, menu);
  }
});

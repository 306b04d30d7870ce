import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { catalogFixture, geometryFixture, previewFixture, reviewFixture } from './fixtures';
import { Loaded, launch, load } from './harness';

let browser: Browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Every page must run under its CSP without a single violation or script error. */
async function clean(l: Loaded): Promise<void> {
  assert.deepEqual(await l.violations(), [], 'CSP violations');
  assert.deepEqual(l.errors, [], 'page errors');
  await l.page.close();
}

/** Whether a canvas has any painted pixel (Chart.js drew something). */
const painted = (l: Loaded, id: string) =>
  l.page.locator(`canvas#${id}`).evaluate((c: HTMLCanvasElement) => {
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return c.width > 0 && c.height > 0;
    return false;
  });

/** The checks table marks the passing check that misses its goal (french in the fixtures), not the one that meets it. */
async function goalMarked(page: Loaded['page']): Promise<void> {
  assert.equal(await page.locator('#checks .goal-missed').count(), 1);
  const row = page.locator('#checks tr', { has: page.locator('.goal-missed') });
  assert.match((await row.textContent())!, /^\s*pass goal missed\s*guard others on french: .*; goal 0\.0100 nats missed by 0\.0023 nats/);
  assert.match((await page.locator('#checks tr', { hasText: 'on spanish' }).textContent())!, /^\s*pass\s*guard others on spanish: .*goal 0\.0100 nats met/);
}

test('Edit Preview renders the numbers, both charts, the heatmap and the checks (a missed goal marked); buttons post messages', async () => {
  const l = await load(browser, 'preview');
  const fx = previewFixture();
  await l.send({ type: 'preview', data: fx });
  const german = l.page.locator('#deltas tr[data-dataset="german"] td.delta');
  await german.waitFor();
  assert.equal(await german.textContent(), '+1.2345');
  assert.equal(await l.page.locator('#deltas tr[data-dataset="spanish"] td.delta').textContent(), '-0.0042');
  assert.equal(await l.page.locator('#deltas tbody tr').count(), 5);
  assert.equal(await l.page.locator('#scale').textContent(), '-0.7500');
  assert.ok(await painted(l, 'bars'), 'the Δloss bar chart is drawn');
  assert.ok(await painted(l, 'sweep'), 'the sweep chart is drawn');
  assert.match((await l.page.locator('#checks').textContent())!, /guard others on french/);
  await goalMarked(l.page);
  assert.match((await l.page.locator('#components').textContent())!, /German function words/);
  // The heatmap starts on the target dataset, one span per token.
  assert.equal(await l.page.locator('p.heat').getAttribute('data-dataset'), 'german');
  assert.equal(await l.page.locator('p.heat span').count(), fx.heatmap.german.length);

  await l.page.locator('#apply').click();
  await l.page.locator('#refresh').click();
  await l.page.locator('#debug-worst').click();
  const posted = (await l.posted()).filter((m) => m.type !== 'ready');
  assert.deepEqual(posted, [{ type: 'apply', edit: 'no_german' }, { type: 'refresh' }, { type: 'debug', dataset: 'german' }]);
  // The last data message is kept for a restored panel.
  assert.equal((await l.state())?.last?.type, 'preview');
  await clean(l);
});

test('Edit Preview: picking another dataset redraws the heatmap and is remembered', async () => {
  const l = await load(browser, 'preview');
  await l.send({ type: 'preview', data: previewFixture() });
  const select = l.page.locator('vscode-single-select#heat-dataset');
  await select.waitFor();
  await select.click();
  await l.page.locator('vscode-single-select#heat-dataset >> li', { hasText: 'french' }).click();
  await l.page.locator('p.heat[data-dataset="french"]').waitFor();
  assert.equal((await l.state())?.ui?.heatDataset, 'french');
  await clean(l);
});

test('a restored panel redraws from its saved state without asking the extension', async () => {
  const l = await load(browser, 'preview', { last: { type: 'preview', data: previewFixture() } });
  assert.equal(await l.page.locator('#deltas tr[data-dataset="german"] td.delta').textContent(), '+1.2345');
  await clean(l);
});

test('Components: 2000 rows render only the visible window; search, sort, detail card and insert work', async () => {
  const l = await load(browser, 'components');
  await l.send({ type: 'catalog', data: catalogFixture(2000) });
  await l.page.locator('#count').waitFor();
  assert.equal(await l.page.locator('#count').textContent(), '2000 of 2000 components');
  const rows = await l.page.locator('.tr[data-key]').count();
  assert.ok(rows > 10 && rows < 80, `virtualised: ${rows} rows in the DOM`);

  // Default sort: norm, largest first (12/3 = 4.00 is the fixture's largest).
  assert.match((await l.page.locator('.tr[data-key]').first().textContent())!, /4\.00\s*$/);
  // Selectivity, highest first (German components have 3..7×).
  await l.page.locator('span[data-sort="selectivity"]').click();
  assert.match((await l.page.locator('.tr[data-key]').first().textContent())!, /7\.0× de/);
  await l.page.locator('span[data-sort="key"]').click();
  assert.equal(await l.page.locator('.tr[data-key]').first().getAttribute('data-key'), 'h.0.mlp.c_fc:0');

  // Search matches labels case-insensitively ("German suffixes 98", "… 980", "… 987") and keys.
  await l.page.locator('#search input').fill('german SUFFIXES 98');
  await l.page.locator('#count', { hasText: '3 of 2000' }).waitFor();
  assert.deepEqual(await l.page.locator('.tr[data-key]').evaluateAll((es) => es.map((e) => e.getAttribute('data-key'))), ['h.0.mlp.c_fc:980', 'h.2.attn.c_proj:98', 'h.3.mlp.c_proj:987']);
  await l.page.locator('#search input').fill('c_proj:1995');
  await l.page.locator('#count', { hasText: '1 of 2000' }).waitFor();

  await l.page.locator('.tr[data-key="h.3.mlp.c_proj:1995"]').click();
  assert.equal(await l.page.locator('#detail mark').textContent(), 'und');
  await l.page.locator('#insert').click();
  assert.deepEqual((await l.posted()).at(-1), { type: 'insertSelector', key: 'h.3.mlp.c_proj:1995' });

  // Scrolling far down renders rows from there: in key order, row 1500 is the first of module h.3.
  await l.page.locator('#search input').fill('');
  await l.page.locator('#count', { hasText: '2000 of 2000' }).waitFor();
  await l.page.locator('.scroller').evaluate((s) => (s.scrollTop = 24 * 1500));
  await l.page.locator('.tr[data-key="h.3.mlp.c_proj:3"]').waitFor();
  assert.equal(await l.page.locator('.tr[data-key="h.0.mlp.c_fc:0"]').count(), 0);
  await clean(l);
});

test('Review renders the lock metrics, the checks with a missed goal marked, and the weight diff; the diff button posts', async () => {
  const l = await load(browser, 'review');
  await l.send({ type: 'review', data: reviewFixture() });
  await l.page.locator('#metrics tr[data-dataset="german"] td.delta').waitFor();
  assert.equal(await l.page.locator('#metrics tr[data-dataset="german"] td.delta').textContent(), '+1.2345');
  assert.match((await l.page.locator('#weights').textContent())!, /h\.1\.mlp\.c_fc\.weight.*128×512.*65536.*1\.230e-2/s);
  await goalMarked(l.page);
  await l.page.locator('#diff').click();
  assert.deepEqual((await l.posted()).at(-1), { type: 'diff' });
  await clean(l);
});

test('the CSP is enforced and a violation is caught: inline script and inline style are blocked', async () => {
  const l = await load(browser, 'preview');
  await l.page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = 'window.__ran = true';
    document.body.append(s);
    const d = document.createElement('div');
    d.innerHTML = '<span style="color: red">x</span>';
    document.body.append(d);
  });
  await l.page.waitForFunction(() => (window as unknown as { __violations: string[] }).__violations.length >= 2);
  assert.equal(await l.page.evaluate(() => (window as unknown as { __ran?: boolean }).__ran), undefined, 'the inline script did not run');
  const v = await l.violations();
  assert.ok(v.some((x) => x.startsWith('script-src')), v.join('\n'));
  assert.ok(v.some((x) => x.startsWith('style-src')), v.join('\n'));
  await l.page.close();
});

test('Geometry: scatter drawn, the layer slider switches points, hover names a sentence, a click debugs the token, state kept', async () => {
  const l = await load(browser, 'geometry');
  await l.send({ type: 'geometry', data: geometryFixture() });
  const name = l.page.locator('#point-name');
  await name.waitFor();
  // The default point is the middle one of two: index 1.
  assert.equal(await name.textContent(), 'h.2.resid');
  assert.ok(await painted(l, 'scatter'), 'the scatter is drawn');
  assert.equal(await l.page.locator('#probe tr[data-tag="german"] td.base').textContent(), '96.0%');
  assert.equal(await l.page.locator('#probe tr[data-tag="german"] td.edited').textContent(), '60.0%');
  assert.match((await l.page.locator('#probe tr[data-tag="french"] td.aligned').textContent())!, /h\.3\.mlp\.c_fc:1 read 0\.30 french words/);
  // The slider: point 0.
  await l.page.locator('#layer').fill('0');
  await l.page.waitForFunction(() => document.querySelector('scalpel-app')!.querySelector('scalpel-geometry')!.shadowRoot!.querySelector('#point-name')!.textContent === 'h.1.resid');
  assert.equal(await l.page.locator('#accuracy').textContent(), '90.0%');
  assert.equal((await l.state())?.ui?.geometryPoint, 0);
  // Sentence 1 is the lowest-left coordinate: drawn at the plot's lower-left corner (16 px padding).
  const canvas = l.page.locator('canvas#scatter');
  await canvas.hover({ position: { x: 16, y: 440 - 16 } });
  await l.page.locator('#tip').waitFor();
  assert.equal(await l.page.locator('#tip').textContent(), 'sentence 1: Alle Menschen sind frei.');
  // Row 0 (German, document 0, token 0) is the highest-right base point: a click opens it in the debugger.
  await canvas.click({ position: { x: 640 - 16, y: 16 } });
  const posted = (await l.posted()).filter((m) => m.type !== 'ready');
  assert.deepEqual(posted, [{ type: 'debugToken', dataset: 'german', document: 0, position: 0 }]);
  assert.equal((await l.state())?.last?.type, 'geometry');
  await clean(l);
});

test('Geometry from a debugger stop: new data opens at its own point whatever the slider showed, and names the debugged token', async () => {
  const l = await load(browser, 'geometry');
  await l.send({ type: 'geometry', data: geometryFixture() });
  const at = (name: string) => l.page.waitForFunction((n) => document.querySelector('scalpel-app')!.querySelector('scalpel-geometry')!.shadowRoot!.querySelector('#point-name')!.textContent === n, name);
  await l.page.locator('#layer').fill('0');
  await at('h.1.resid');
  const fixture = geometryFixture();
  const stop: typeof fixture = { ...fixture, initialPoint: 'h.2.resid', marked: { tag: 'german', document: 3, position: 7, token: ' Würde' }, points: fixture.points.map((p) => ({ ...p, marked: { base: [20, 20], edited: [19, 19] } })) };
  await l.send({ type: 'geometry', data: stop });
  await at('h.2.resid');
  assert.equal(await l.page.locator('#marked').textContent(), '◎ debugged: german · " Würde" · document 3, token 7');
  assert.ok(await painted(l, 'scatter'));
  await clean(l);
});

test('Geometry: a restored panel redraws its last point from saved state', async () => {
  const l = await load(browser, 'geometry', { last: { type: 'geometry', data: geometryFixture() }, ui: { geometryPoint: 0, geometryMode: 'base' } });
  assert.equal(await l.page.locator('#point-name').textContent(), 'h.1.resid');
  assert.ok(await painted(l, 'scatter'));
  await clean(l);
});

/** The Geometry element's drawn points (screen position, row, side), as hover and click see them. */
const drawnPoints = (l: Loaded) =>
  l.page.evaluate(() => (document.querySelector('scalpel-app')!.querySelector('scalpel-geometry') as unknown as { drawn: { x: number; y: number; row: number; side: string }[] }).drawn.map((d) => ({ ...d })));

async function pickView(l: Loaded, label: string): Promise<void> {
  await l.page.locator('vscode-single-select#view').click();
  await l.page.locator('vscode-single-select#view >> li', { hasText: label }).click();
}

/** The scatter canvas's size: on the page (CSS pixels, border included), its content box and its backing store. */
const canvasFit = (l: Loaded) =>
  l.page.evaluate(() => {
    const c = document.querySelector('scalpel-app')!.querySelector('scalpel-geometry')!.shadowRoot!.querySelector<HTMLCanvasElement>('canvas#scatter')!;
    const r = c.getBoundingClientRect();
    return { left: r.left, right: r.right, width: c.clientWidth, height: c.clientHeight, backing: [c.width, c.height], page: document.documentElement.clientWidth };
  });

test('Geometry: in a narrow panel the canvas fits its width (same shape, sharp at the device pixel ratio), hover and click find the drawn point; wider again, it grows back', async () => {
  const l = await load(browser, 'geometry', undefined, { width: 360, height: 720, deviceScaleFactor: 2 });
  await l.send({ type: 'geometry', data: geometryFixture() });
  await l.page.locator('#point-name').waitFor();
  const fit = await canvasFit(l);
  assert.ok(fit.left >= 0 && fit.right <= fit.page, `the canvas (${fit.left}–${fit.right}) lies within the page's ${fit.page} px`);
  assert.ok(fit.width < 640 && fit.width >= fit.page - 40, `it takes the panel's width: ${fit.width} px of ${fit.page}`);
  assert.ok(Math.abs(fit.height / fit.width - 440 / 640) < 0.005, `the plot keeps its shape: ${fit.width} × ${fit.height}`);
  assert.deepEqual(fit.backing, [fit.width * 2, fit.height * 2], 'two device pixels per CSS pixel');
  assert.ok(await painted(l, 'scatter'));
  // Sentence 1 is the lowest-left coordinate, drawn at the smaller plot's lower-left corner (16 px padding).
  const drawn = await drawnPoints(l);
  const sentence = drawn.find((d) => d.row === -1 && d.side === 'base')!;
  assert.deepEqual([sentence.x, sentence.y], [16, fit.height - 16]);
  const canvas = l.page.locator('canvas#scatter');
  await canvas.hover({ position: { x: sentence.x, y: sentence.y } });
  await l.page.locator('#tip').waitFor();
  assert.equal(await l.page.locator('#tip').textContent(), 'sentence 1: Alle Menschen sind frei.');
  // Row 0 is the highest-right base point: at the narrow plot's upper-right corner, and a click there debugs it.
  const row0 = drawn.find((d) => d.row === 0 && d.side === 'base')!;
  assert.deepEqual([row0.x, row0.y], [fit.width - 16, 16]);
  await canvas.click({ position: { x: row0.x, y: row0.y } });
  assert.deepEqual((await l.posted()).filter((m) => m.type !== 'ready'), [{ type: 'debugToken', dataset: 'german', document: 0, position: 0 }]);
  // A wider panel: the plot grows back to its full size and is drawn again at it.
  await l.page.setViewportSize({ width: 1100, height: 720 });
  await l.page.waitForFunction(() => document.querySelector('scalpel-app')!.querySelector('scalpel-geometry')!.shadowRoot!.querySelector<HTMLCanvasElement>('canvas#scatter')!.clientWidth === 640);
  assert.deepEqual((await canvasFit(l)).backing, [1280, 880]);
  const wide = (await drawnPoints(l)).find((d) => d.row === 0 && d.side === 'base')!;
  assert.deepEqual([wide.x, wide.y], [640 - 16, 16]);
  await clean(l);
});

test('Geometry: the PC1–PC3 plane and the 3-D view; dragging turns it (points move, hover and click still find a token), kept in state', async () => {
  const l = await load(browser, 'geometry');
  await l.send({ type: 'geometry', data: geometryFixture() });
  await l.page.locator('#point-name').waitFor();
  assert.match((await l.page.locator('#explained').textContent())!, /PC1 30\.0% · PC2 10\.0% · PC3 5\.0%/);
  const canvas = l.page.locator('canvas#scatter');
  const tip = l.page.locator('#tip');
  // PC1–PC3: sentence 1 (PC1 −10, PC3 +10) is the upper-left point.
  await pickView(l, 'PC1 – PC3');
  assert.equal((await l.state())?.ui?.geometryView, 'pc1-pc3');
  await canvas.hover({ position: { x: 16, y: 16 } });
  assert.equal(await tip.textContent(), 'sentence 1: Alle Menschen sind frei.');

  await pickView(l, '3-D');
  assert.equal((await l.state())?.ui?.geometryView, '3d');
  const before = await drawnPoints(l);
  const row0 = (pts: typeof before) => pts.find((d) => d.row === 0 && d.side === 'base')!;
  await canvas.hover({ position: { x: row0(before).x, y: row0(before).y } });
  assert.match((await tip.textContent())!, /^german · " Würde" · document 0, token 0/);
  // Every point inside the plot: one scale on all three axes, the bounding sphere fitted.
  assert.ok(before.every((d) => d.x >= 0 && d.x <= 640 && d.y >= 0 && d.y <= 440));

  // A horizontal drag turns the view about the vertical axis: points move, the pitch stays, nothing is posted.
  const box = (await canvas.boundingBox())!;
  const rotation0 = (await l.state())?.ui?.geometryRotation as number[] | undefined;
  await l.page.mouse.move(box.x + 300, box.y + 300);
  await l.page.mouse.down();
  await l.page.mouse.move(box.x + 400, box.y + 300, { steps: 8 });
  await l.page.mouse.up();
  const after = await drawnPoints(l);
  const moved = Math.hypot(row0(after).x - row0(before).x, row0(after).y - row0(before).y);
  assert.ok(moved > 20, `row 0 moves on screen when the view turns (${moved.toFixed(1)} px)`);
  assert.equal(after.length, before.length, 'the same points, arrows and paths drawn');
  const rotation = (await l.state())?.ui?.geometryRotation as number[];
  assert.ok(Array.isArray(rotation) && rotation.length === 2, 'the angle is saved');
  if (rotation0) assert.equal(rotation[1], rotation0[1]);
  assert.deepEqual((await l.posted()).filter((m) => m.type !== 'ready'), [], 'a drag is not a click');
  // Hover and click find row 0 where it is drawn now.
  await canvas.hover({ position: { x: row0(after).x, y: row0(after).y } });
  assert.match((await tip.textContent())!, /^german · " Würde"/);
  await canvas.click({ position: { x: row0(after).x, y: row0(after).y } });
  assert.deepEqual((await l.posted()).filter((m) => m.type !== 'ready'), [{ type: 'debugToken', dataset: 'german', document: 0, position: 0 }]);
  // The arrow keys turn it too, and back.
  await canvas.focus();
  await l.page.keyboard.press('ArrowRight');
  const keyed = await drawnPoints(l);
  assert.notDeepEqual(keyed, after);
  await l.page.keyboard.press('ArrowLeft');
  const back = await drawnPoints(l);
  for (const [i, d] of back.entries()) assert.ok(Math.abs(d.x - after[i].x) < 1e-6 && Math.abs(d.y - after[i].y) < 1e-6, 'right then left is where it was');
  await clean(l);
});

test('Geometry: a restored 3-D view draws at its saved angle; a quarter turn puts PC3 on the horizontal axis', async () => {
  const at = async (rotation: number[]) => {
    const l = await load(browser, 'geometry', { last: { type: 'geometry', data: geometryFixture() }, ui: { geometryPoint: 0, geometryView: '3d', geometryRotation: rotation } });
    const pts = await drawnPoints(l);
    await clean(l);
    const find = (row: number) => pts.find((d) => d.row === row && d.side === 'base')!;
    return { row0: find(0), sentence1: find(-1) };
  };
  // Row 0 is (PC1 10, PC2 10, PC3 −10), sentence 1 (−10, −10, +10).
  const front = await at([0, 0]);
  assert.ok(front.row0.x > 320 && front.row0.y < 220, 'unturned: PC1 right, PC2 up');
  assert.ok(front.sentence1.x < 320 && front.sentence1.y > 220);
  const quarter = await at([Math.PI / 2, 0]);
  assert.ok(quarter.row0.x < 320 && quarter.sentence1.x > 320, 'a quarter turn: PC3 runs to the right');
  assert.ok(Math.abs(quarter.row0.y - front.row0.y) < 1e-6, 'and PC2 stays up');
});

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Command } from '../command';
import { ScalpelError, fileError, readTextFile } from '../../engine/errors';
import { lockFileFor } from '../../engine/edit/apply';
import { LOCK_FORMAT, LockFile, lockProblem, readLock } from '../../engine/edit/lock';

const usage = `scalpel review SPEC.scalpel [--base REV] [--lock FILE] -o review.html

One self-contained HTML page for a pull request: the spec's diff against git revision REV (default HEAD) in
Monaco's diff editor, the lock file's scales, components, checks and loss per dataset before and after the
edit (and the same from REV's lock, when it has one), and a Δloss chart. Reads the lock written by
\`scalpel apply\`; runs no model.

  -o, --out FILE   the page to write
  --base REV       git revision to compare the spec and lock with (default HEAD)
  --lock FILE      lock file (default: SPEC.scalpel.lock)`;

/** The file's text at a git revision, or undefined when git or the revision does not have it. */
function gitShow(rev: string, file: string): string | undefined {
  try {
    const dir = path.dirname(file);
    const top = execFileSync('git', ['rev-parse', '--show-toplevel'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const rel = path.relative(top, fs.realpathSync(file)).split(path.sep).join('/');
    return execFileSync('git', ['show', `${rev}:${rel}`], { cwd: top, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 });
  } catch {
    return undefined;
  }
}

function assets(): { js: string; css: string; worker: string } {
  // Bundled next to dist/cli.js; from source (tsx), look in the build output.
  const dirs = [path.join(__dirname, 'review'), path.resolve(__dirname, '../../dist/review')];
  const dir = dirs.find((d) => fs.existsSync(path.join(d, 'page.js')));
  if (!dir) throw new ScalpelError('the review page bundle is missing (dist/review/page.js): run npm run build');
  const read = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
  return { js: read('page.js'), css: read('page.css'), worker: read('worker.js') };
}

const esc = (s: string) => s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
/** Script text inside <script>: `</script` and `<!--` cannot end or change the element (same meaning in JavaScript). */
const scriptSafe = (s: string) => s.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
/** JSON inside <script type="application/json">: every `<` as \u003c, so no text in it can close the element or open a comment, and it stays valid JSON. */
const jsonSafe = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c');
/** A number from the lock, shown as text (the lock is checked on read; this keeps the page safe whatever it holds). */
const num = (v: unknown, digits?: number) => esc(typeof v === 'number' ? (digits === undefined ? String(v) : v.toFixed(digits)) : String(v));
const signed = (v: number, d = 4) => `${v >= 0 ? '+' : ''}${v.toFixed(d)}`;

/** Horizontal bars of Δloss per dataset, for this lock and (lighter) the base revision's. */
function chart(after: LockFile, before: LockFile | undefined): string {
  const names = Object.keys(after.metrics);
  const values = names.flatMap((n) => [after.metrics[n].delta, before?.metrics[n]?.delta ?? 0]);
  const max = Math.max(1e-9, ...values.map(Math.abs));
  const row = 26;
  const w = 560;
  const mid = 150 + (w - 150) / 2;
  const scale = (w - 150) / 2 / max;
  const bars = names.map((n, i) => {
    const y = 10 + i * row;
    const d = after.metrics[n].delta;
    const b = before?.metrics[n]?.delta;
    const bar = (v: number, dy: number, h: number, cls: string) =>
      `<rect class="${cls}" x="${Math.min(mid, mid + v * scale).toFixed(1)}" y="${y + dy}" width="${Math.abs(v * scale).toFixed(1)}" height="${h}"/>`;
    return `<text x="0" y="${y + 14}">${esc(n)}</text>${b !== undefined ? bar(b, 0, 6, 'base') : ''}${bar(d, 7, 12, d >= 0 ? 'up' : 'down')}<text x="${w + 6}" y="${y + 16}">${signed(d)}</text>`;
  });
  const h = 20 + names.length * row;
  return `<svg id="delta-chart" width="${w + 90}" height="${h}" role="img" aria-label="Δloss per dataset"><line x1="${mid}" y1="0" x2="${mid}" y2="${h}" class="axis"/>${bars.join('')}</svg>`;
}

function metricsTable(after: LockFile, before: LockFile | undefined): string {
  const rows = Object.entries(after.metrics).map(([n, m]) => {
    const b = before?.metrics[n];
    const vsUniform = after.uniform !== undefined ? `<td>${signed(m.after - after.uniform)}</td>` : '';
    return `<tr><td>${esc(n)}</td><td>${num(m.tokens)}</td><td>${num(m.before, 4)}</td><td>${num(m.after, 4)}</td><td>${signed(m.delta)}</td>${vsUniform}<td>${b ? signed(b.delta) : '—'}</td></tr>`;
  });
  // Locks written before `uniform` was recorded have no such column.
  const uniformHead = after.uniform !== undefined ? `<th title="ln V = ${after.uniform.toFixed(4)} nats: the loss of a uniform guess">after − ln V</th>` : '';
  return `<table id="metrics"><tr><th>dataset</th><th>tokens</th><th>loss before edit</th><th>after edit</th><th>Δ nats</th>${uniformHead}<th>Δ at base revision</th></tr>${rows.join('')}</table>`;
}

export function reviewHtml(args: { spec: string; specBefore: string | undefined; specAfter: string; lock: LockFile; lockBefore: LockFile | undefined; base: string }): string {
  const a = assets();
  const { lock, lockBefore } = args;
  // Only the page's own script runs: anything a spec or lock smuggles into the HTML lacks this nonce.
  // Styles stay 'unsafe-inline': Monaco writes its own style elements at run time (styles cannot run script).
  const nonce = randomBytes(16).toString('base64');
  const data = { spec: { before: args.specBefore ?? '', after: args.specAfter } };
  const scales = lock.edits.map((e) => `<code>${esc(e)}</code> × ${lock.scales[e].toPrecision(6)}${lockBefore?.scales?.[e] !== undefined ? ` (was ${lockBefore.scales[e].toPrecision(6)})` : ''}`).join(', ');
  const tokens = lock.tuning?.tokens.map((t) => `${t.scored} tokens of <code>${esc(t.dataset)}</code>: ${t.text.slice(1).map((x) => `<code>${esc(JSON.stringify(x))}</code>`).join(' ')}`).join('; ');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Scalpel review: ${esc(path.basename(args.spec))}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'nonce-${nonce}'; style-src 'unsafe-inline'; font-src data:; worker-src blob:; img-src data:">
<style>${a.css}</style>
<style>
body { font: 14px system-ui, sans-serif; margin: 16px 24px; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.pass { color: #1a7f37; } .fail { color: #cf222e; font-weight: bold; } .goal-missed { color: #9a6700; }
#spec-diff { height: 420px; border: 1px solid #ccc; }
svg text { font: 12px system-ui, sans-serif; } svg .up { fill: #cf222e; } svg .down { fill: #1a7f37; } svg .base { fill: #aaa; } svg .axis { stroke: #888; }
code { font-size: 0.95em; }
</style></head><body>
<h1>Scalpel review: <code>${esc(path.basename(args.spec))}</code></h1>
<p>Edits ${scales}. Output <code>${esc(lock.output.file)}</code> sha256 <code>${esc(lock.output.sha256.slice(0, 16))}…</code>; base model sha256 <code>${esc(lock.model.sha256.slice(0, 16))}…</code>; catalog <code>${esc(lock.catalog.sha256.slice(0, 16))}…</code>.</p>
${tokens ? `<p>Tuned (${esc(lock.tuning!.objective)}) on ${tokens}.</p>` : ''}
<h2>Spec: ${args.specBefore === undefined ? `new (not in ${esc(args.base)})` : `${esc(args.base)} → working copy`}</h2>
<div id="spec-diff"></div>
<h2>Δloss per dataset</h2>
${chart(lock, lockBefore)}
<h2>Loss before and after</h2>
${metricsTable(lock, lockBefore)}
<h2>Checks</h2>
<table id="checks">${lock.checks.map((c) => `<tr><td class="${c.pass ? 'pass' : 'fail'}">${c.pass ? 'pass' : 'FAIL'}${c.pass && c.goal && !c.goal.met ? ' <span class="goal-missed">goal missed</span>' : ''}</td><td>${esc(c.message)}</td></tr>`).join('')}</table>
<h2>Components (${lock.components.length})</h2>
<table id="components">${lock.components.map((c) => `<tr><td><code>${esc(c.key)}</code></td><td>${esc(c.label ?? '')}</td><td>${esc(c.edit)}</td><td>× ${c.scale.toPrecision(6)}</td><td>${esc(c.gate ?? '')}</td></tr>`).join('')}</table>
<script type="application/json" id="review-data">${jsonSafe(data)}</script>
<script type="text/plain" id="editor-worker">${scriptSafe(a.worker)}</script>
<script nonce="${nonce}">${scriptSafe(a.js)}</script>
</body></html>
`;
}

export const reviewCommand: Command = {
  name: 'review',
  summary: 'one HTML page with the spec diff, the lock and the Δloss chart',
  usage,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { out: { type: 'string', short: 'o' }, base: { type: 'string', default: 'HEAD' }, lock: { type: 'string' } },
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length !== 1) throw new ScalpelError('review takes one spec file');
    if (!values.out) throw new ScalpelError('review needs -o review.html');
    const spec = path.resolve(positionals[0]);
    const specAfter = readTextFile(spec, 'read spec', positionals[0]);
    const lockFile = path.resolve(values.lock ?? lockFileFor(spec));
    const lock = readLock(lockFile);
    if (!lock) throw new ScalpelError(`no lock file ${path.relative(process.cwd(), lockFile)}: run scalpel apply first`);
    const oldLockText = gitShow(values.base, lockFile);
    let lockBefore: LockFile | undefined;
    try {
      const parsed = oldLockText ? JSON.parse(oldLockText) : undefined;
      lockBefore = parsed?.format === LOCK_FORMAT && !lockProblem(parsed) ? parsed : undefined;
    } catch {
      lockBefore = undefined; // an unreadable old lock is shown as absent
    }
    const html = reviewHtml({ spec, specBefore: gitShow(values.base, spec), specAfter, lock, lockBefore, base: values.base });
    try {
      fs.writeFileSync(values.out, html);
    } catch (err) {
      throw fileError(err, values.out, 'write review page');
    }
    process.stdout.write(`wrote ${values.out} (${(html.length / 2 ** 20).toFixed(1)} MiB)\n`);
    return 0;
  },
};

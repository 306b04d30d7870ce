/**
 * The spec fuzzer: golden and example specs mutated the way a hostile user (or a confused editor)
 * would — cut, spliced, repeated thousands of times into deep nesting and long chains, sprinkled
 * with catastrophic regexes, device paths, odd line ends and characters — and every step the
 * language server runs on a keystroke applied to each: parse, reparse from the unmutated text,
 * check, and the editor services. Counts throws and slow steps (CPU time, so a busy machine does not
 * count against the code). Used bounded by fuzz.test.ts (npm test) and at length by scripts/fuzz.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyze, defaultEnv } from '../../language/checker';
import { format } from '../../language/format';
import { parse, reparse } from '../../language/parser';
import * as S from '../../language/services';
import { rng } from '../helpers/random';
import { stripMarkers } from './harness';

const ROOT = path.join(__dirname, '..', '..');
const GOLDEN = path.join(__dirname, 'golden');

/** Specs to mutate: the goldens (which point at test/fixtures/lang) and the examples. */
export function seedSpecs(): string[] {
  const golden = fs.readdirSync(GOLDEN).filter((f) => f.endsWith('.scalpel')).map((f) => stripMarkers(fs.readFileSync(path.join(GOLDEN, f), 'utf8')).text);
  const examples = fs.readdirSync(path.join(ROOT, 'examples')).filter((f) => f.endsWith('.scalpel') && !f.startsWith('.')).map((f) => fs.readFileSync(path.join(ROOT, 'examples', f), 'utf8'));
  return [...golden, ...examples];
}

const WORDS = [
  'model', 'data', 'guard', 'edit', 'expect', 'select', 'scale', 'keep', 'from', 'on', 'tune', 'in', 'by', 'where', 'within', 'goal', 'and',
  'field', 'limit', 'tokens', 'module', 'label', 'top', 'or', 'minus', 'tokenizer', 'components', 'sha256', 'udhr', 'text', 'jsonl',
  'inline', 'maximize', 'minimize', 'loss', 'selectivity', 'norm', 'activation', 'firing', 'rises', 'falls', 'moves', 'is', 'nats', 'bits',
  '%', '{', '}', '[', ']', '(', ')', ',', ':', '=', '==', '>=', '<', '#', '"', '/', '\\', '0', '-1', '1e999', '1e-999', '0.5', 'NaN',
  '"h.2.mlp.c_fc:41"', '"h.*.mlp.c_fc"', '"deu"', '"../../fixtures/lang"', '"../../fixtures/lang/components"', '"/dev/zero"', '"/dev/stdin"',
  '"/proc/self/fd/0"', '"."', '".."', '"/"', '/german/i', '/(/', '/^(.|.)*(.|.)*(.|.)*!$/', '/(a+)+$/', '/(?=x)/', '/\\1/', '"\\u{110000}"',
  '"\\u{1F600}"', '\u0000', '\ufeff', '\u00a0', '\u2028', '\ud800', '\r', '\r\r\n', '\t', 'é', '🙂', '$', '${x}', '<!--', '</script>',
];

const REPEATABLE = ['(', ')', ' or "h.2.mlp.c_fc:1"', ' minus "h.2.mlp.c_fc:2"', 'top 1 by norm where ', '# c\n', '\n', 'x', '"', '{', '}',
  'data d = inline "x"\n', 'select "h.2.mlp.c_fc:3"\n', '(.|.)*', ';', '\r\r\n'];

/** One mutated spec: 1–4 mutations of a random seed spec. */
export function mutate(specs: string[], random: () => number): string {
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(xs: T[]) => xs[int(xs.length)];
  let text = pick(specs);
  for (let m = 1 + int(4); m > 0; m--) {
    const at = int(text.length + 1);
    switch (int(8)) {
      case 0: text = text.slice(0, at) + text.slice(at + int(40)); break;
      case 1: text = text.slice(0, at) + pick(WORDS) + (random() < 0.5 ? ' ' : '') + text.slice(at); break;
      case 2: {
        // Repeat a slice of the spec itself: deep nesting and long chains from the spec's own shapes.
        const len = 1 + int(30);
        text = text.slice(0, at) + text.slice(at, at + len).repeat(1 + int(random() < 0.1 ? 4000 : 40)) + text.slice(at);
        break;
      }
      case 3: text = text.slice(0, at) + pick(REPEATABLE).repeat(1 + int(random() < 0.2 ? 6000 : 200)) + text.slice(at); break;
      case 4: text = text.slice(0, at) + String.fromCharCode(int(0x3000)) + text.slice(at + 1); break;
      case 5: {
        const lines = text.split('\n');
        const i = int(lines.length);
        const j = int(lines.length);
        [lines[i], lines[j]] = [lines[j], lines[i]];
        text = lines.join(random() < 0.2 ? '\r\n' : '\n');
        break;
      }
      case 6: text = text.slice(0, at) + text.slice(int(text.length + 1)); break;
      default: text = text.slice(0, at) + pick(specs).slice(0, int(400)) + text.slice(at); break;
    }
  }
  return text;
}

export interface FuzzCounts {
  inputs: number;
  throws: number;
  /** Steps (one call: parse, reparse, analyze, a service) that took over `slowMs` of CPU. */
  slow: number;
  /** reparse from the unmutated spec disagreeing with a fresh parse's diagnostics. */
  incrementalMismatches: number;
  slowestMs: number;
  slowestStep: string;
  largestInput: number;
  /** The first few failures, to reproduce: index, step and message. */
  failures: string[];
}

/** Runs `n` mutated specs from `seed`; `onProgress` is called every 1,000 inputs. */
export function fuzzSpecs(n: number, seed: number, slowMs = 1000, onProgress?: (done: number, c: FuzzCounts) => void): FuzzCounts {
  const specs = seedSpecs();
  const env = defaultEnv(GOLDEN);
  const random = rng(seed);
  const c: FuzzCounts = { inputs: 0, throws: 0, slow: 0, incrementalMismatches: 0, slowestMs: 0, slowestStep: '', largestInput: 0, failures: [] };
  for (let i = 0; i < n; i++) {
    const base = specs[Math.floor(random() * specs.length)];
    const text = mutate(specs, random);
    const probe = Math.floor(random() * (text.length + 1));
    c.inputs++;
    c.largestInput = Math.max(c.largestInput, text.length);
    const step = <T>(name: string, f: () => T): T | undefined => {
      const t = process.cpuUsage();
      try {
        return f();
      } catch (err) {
        c.throws++;
        if (c.failures.length < 10) c.failures.push(`#${i} ${name}: ${(err as Error)?.message ?? err}`);
        return undefined;
      } finally {
        const d = process.cpuUsage(t);
        const ms = (d.user + d.system) / 1000;
        if (ms > slowMs) {
          c.slow++;
          if (c.failures.length < 10) c.failures.push(`#${i} ${name}: ${ms.toFixed(0)} ms for ${text.length} characters`);
        }
        if (ms > c.slowestMs) {
          c.slowestMs = ms;
          c.slowestStep = `#${i} ${name} (${text.length} characters)`;
        }
      }
    };
    const fresh = step('parse', () => parse(text));
    const incremental = step('reparse', () => reparse(parse(base), text));
    if (fresh && incremental && sameDiagnostics(fresh.diagnostics, incremental.diagnostics) === false) c.incrementalMismatches++;
    const a = step('analyze', () => analyze(text, env, fresh ?? undefined));
    if (a) {
      step('diagnostics', () => S.lspDiagnostics(a));
      step('completion', () => S.completions(a, probe));
      step('hover', () => S.hover(a, probe));
      step('definition', () => S.definition(a, probe));
      step('references', () => S.references(a, probe, true));
      step('codeActions', () => S.codeActions(a, { start: 0, end: text.length }, 'file:///fuzz.scalpel'));
      step('semanticTokens', () => S.semanticTokens(a));
      step('foldingRanges', () => S.foldingRanges(a));
      step('documentSymbols', () => S.documentSymbols(a));
      step('formatting', () => S.formatting(a));
    }
    step('format', () => {
      const f = format(text);
      if (f !== undefined && format(f) !== f) throw new Error('formatting is not idempotent');
    });
    if (onProgress && (i + 1) % 1000 === 0) onProgress(i + 1, c);
  }
  return c;
}

function sameDiagnostics(a: { start: number; end: number; code: string; message: string }[], b: typeof a): boolean {
  const key = (xs: typeof a) => xs.map((d) => `${d.start}:${d.end}:${d.code}:${d.message}`).sort().join('\n');
  return key(a) === key(b);
}

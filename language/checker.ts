/**
 * The checker: names, kinds, units, files, hash pins, component keys and module paths against the
 * model's catalog, ranges, and warnings for likely mistakes. Pure over its environment (file probe
 * and catalog cache are injected), never throws, and knows nothing of LSP.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataSource, udhrDocuments } from '../engine/data';
import { componentKey, parseComponentKey } from '../engine/catalog/key';
import { modelSha256, modelSha256Async } from '../engine/identity';
import { moduleGlob } from '../engine/onnx/modules';
import * as A from './ast';
import { CatalogCache, CatalogIndex, bestSelectivity, keyExists, selectComponents, selectionOrdinals } from './catalog';
import { Diagnostic, LineIndex, diag } from './diagnostics';
import { ParseResult, parse } from './parser';
import type { Gate } from '../engine/edit/gate';
import { compileLabelRegex } from './regex';
import type { MetricSpec, ScaleSpec, SelectorSpec, TowardSpec } from './spec';
import { StatisticName, StatisticSpec, statisticDef, statisticSignatures } from './statistics';

export type SymbolKind = 'model' | 'data' | 'guard' | 'edit';

export interface SymbolInfo {
  name: string;
  kind: SymbolKind;
  decl: A.Decl;
  /** The name where it is declared. */
  def: A.Span;
}

export interface Reference {
  span: A.Span;
  name: string;
  /** Undefined when the name is unknown. */
  symbol?: SymbolInfo;
}

export interface ModelInfo {
  /** Absolute .onnx path when it exists. */
  file?: string;
  tokenizer?: string;
  components?: string;
  catalog?: CatalogIndex;
}

/** File-system access of the checker, injected so that servers can cache and tests can count. */
export interface FileProbe {
  /** `other`: exists but is neither a regular file nor a folder (a FIFO, a device, a socket). */
  kind(file: string): 'file' | 'dir' | 'other' | undefined;
  /** A model's SHA-256 hex (`modelSha256`: its file and external data), or undefined when unreadable (or, in the background, not hashed yet). */
  sha256(file: string): string | undefined;
  /** Stops hashing in the background. */
  dispose?(): void;
}

export interface CheckEnv {
  /** Folder that relative paths in the spec resolve against (the spec's folder). */
  baseDir: string;
  files: FileProbe;
  catalogs: CatalogCache;
}

export interface Analysis {
  parse: ParseResult;
  lines: LineIndex;
  /** Sorted by position. */
  diagnostics: Diagnostic[];
  symbols: Map<string, SymbolInfo>;
  references: Reference[];
  models: Map<string, ModelInfo>;
  datasetSources: Map<string, DataSource>;
  datasetTags: Map<string, string>;
  selectorSpecs: Map<A.Selector, SelectorSpec>;
  /** Resolved component keys of each selector node that could be resolved. */
  selections: Map<A.Selector, string[]>;
  scaleSpecs: Map<A.ScaleStmt, ScaleSpec>;
  metricSpecs: Map<A.MetricNode, MetricSpec>;
  /** The catalog each edit's selectors resolve against. */
  editCatalogs: Map<A.EditDecl, CatalogIndex>;
  env: CheckEnv;
}

/** Files up to this size are hashed on the spot; the language server hashes bigger ones in the background. */
export const SYNC_HASH_BYTES = 32 * 1024 * 1024;

/**
 * A probe that caches hashes by path, size, mtime and inode (a model is hashed once, not per
 * keystroke), streaming the file in chunks. With `onHashed`, files over SYNC_HASH_BYTES are hashed
 * in the background and `onHashed` is called when a hash is ready, so a keystroke never waits on a
 * large model; a newer stamp cancels a hash in flight.
 */
export function cachingProbe(onHashed?: () => void): FileProbe {
  const hashes = new Map<string, { stamp: string; hash?: string }>();
  const inFlight = new Map<string, AbortController>();
  const background = (file: string, stamp: string) => {
    inFlight.get(file)?.abort();
    const stop = new AbortController();
    inFlight.set(file, stop);
    const finish = (hash: string | undefined) => {
      if (inFlight.get(file) === stop) inFlight.delete(file);
      if (stop.signal.aborted || hashes.get(file)?.stamp !== stamp) return;
      hashes.set(file, { stamp, hash });
      onHashed!();
    };
    modelSha256Async(file, stop.signal).then(finish, () => finish(undefined));
  };
  return {
    kind(file) {
      try {
        const st = fs.statSync(file);
        return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
      } catch {
        return undefined;
      }
    },
    sha256(file) {
      let st: fs.Stats;
      try {
        st = fs.statSync(file);
      } catch {
        return undefined;
      }
      if (!st.isFile()) return undefined;
      const stamp = `${st.size}:${st.mtimeMs}:${st.ino}`;
      const hit = hashes.get(file);
      if (hit?.stamp === stamp) return hit.hash;
      if (onHashed && st.size > SYNC_HASH_BYTES) {
        hashes.set(file, { stamp });
        background(file, stamp);
        return undefined;
      }
      let hash: string | undefined;
      try {
        hash = modelSha256(file);
      } catch {
        hash = undefined;
      }
      hashes.set(file, { stamp, hash });
      return hash;
    },
    dispose() {
      for (const stop of inFlight.values()) stop.abort();
      inFlight.clear();
    },
  };
}

const sharedProbe = cachingProbe();
const sharedCatalogs = new CatalogCache();

export function defaultEnv(baseDir: string): CheckEnv {
  return { baseDir, files: sharedProbe, catalogs: sharedCatalogs };
}

/** Arguments each kind of statistic takes: least and most. */
const ARITY = { none: [0, 0], dataset: [1, 1], versus: [1, Infinity] } as const;
const ARITY_TEXT = { none: 'no arguments', dataset: 'one dataset', versus: 'a dataset, then optionally the datasets or guards to compare with' } as const;

/** Selectivity below this for every tag makes a component "broad" (it is not about one language). */
export const SPECIFIC_SELECTIVITY = 2;

export function analyze(text: string, env: CheckEnv, parsed?: ParseResult): Analysis {
  const p = parsed ?? parse(text);
  return new Checker(p, env).run();
}

type MapName = 'selectorSpecs' | 'selections' | 'scaleSpecs' | 'metricSpecs' | 'editCatalogs';

/** What checking one edit produced, with offsets as they were (replayed shifted by the node's move). */
interface EditRecord {
  sig: string;
  start: number;
  diags: Diagnostic[];
  refs: { start: number; end: number; name: string }[];
  entries: [MapName, unknown, unknown][];
}

/** Keyed by edit nodes, which `reparse` reuses (shifted) for declarations an edit did not touch. */
const editCache = new WeakMap<A.EditDecl, EditRecord>();

const catalogIds = new WeakMap<CatalogIndex, number>();
let nextCatalogId = 1;

function catalogId(c: CatalogIndex | undefined): number {
  if (!c) return 0;
  let id = catalogIds.get(c);
  if (id === undefined) catalogIds.set(c, (id = nextCatalogId++));
  return id;
}

const KIND_WORD: Record<SymbolKind, string> = { model: 'a model', data: 'a dataset', guard: 'a guard', edit: 'an edit' };

class Checker {
  private readonly a: Analysis;
  private readonly diags: Diagnostic[] = [];

  constructor(parsed: ParseResult, private readonly env: CheckEnv) {
    this.a = {
      parse: parsed, lines: new LineIndex(parsed.text), diagnostics: [], symbols: new Map(), references: [], models: new Map(),
      datasetSources: new Map(), datasetTags: new Map(), selectorSpecs: new Map(), selections: new Map(), scaleSpecs: new Map(),
      metricSpecs: new Map(), editCatalogs: new Map(), env,
    };
  }

  private report(d: Diagnostic): void {
    this.diags.push(d);
    this.recording?.diags.push(d);
  }

  /** Sets an entry of one of the analysis' node maps, and records it while an edit is being checked. */
  private put<K extends MapName>(name: K, node: Parameters<Analysis[K]['set']>[0], value: Parameters<Analysis[K]['set']>[1]): void {
    (this.a[name] as Map<unknown, unknown>).set(node, value);
    this.recording?.entries.push([name, node, value]);
  }

  private recording?: EditRecord;
  private sig?: string;

  /**
   * Everything an edit's check depends on besides its own text: declared names and kinds, guard
   * members, dataset tags and each model's catalog. Equal signature + same (reused) edit node =
   * the same results, so a one-character edit elsewhere does not re-check 600 edits.
   */
  private signature(): string {
    if (this.sig === undefined) {
      const parts: string[] = [];
      for (const s of this.a.symbols.values()) {
        parts.push(`${s.kind} ${s.name}`);
        if (s.kind === 'guard') parts.push((s.decl as A.GuardDecl).members.map((m) => m.text).join(','));
        if (s.kind === 'model') {
          const declared = (s.decl as A.ModelDecl).props.some((p) => p.key.text === 'components');
          parts.push(`${declared}:${catalogId(this.a.models.get(s.name)?.catalog)}`);
        }
      }
      for (const [d, t] of this.a.datasetTags) parts.push(`${d}=${t}`);
      this.sig = parts.join('\n');
    }
    return this.sig;
  }

  run(): Analysis {
    const decls = this.a.parse.file.decls;
    for (const d of decls) this.declare(d);
    for (const d of decls) {
      if (d.kind === 'model') this.model(d);
      else if (d.kind === 'data') this.data(d);
    }
    for (const d of decls) if (d.kind === 'guard') this.guard(d);
    for (const d of decls) if (d.kind === 'edit') this.edit(d);
    for (const d of decls) if (d.kind === 'expect') this.expect(d);
    this.overlaps(decls.filter((d): d is A.EditDecl => d.kind === 'edit'));
    this.unused();
    const all = [...this.a.parse.diagnostics, ...this.diags];
    all.sort((x, y) => x.start - y.start || x.end - y.end);
    this.a.diagnostics = all;
    return this.a;
  }

  private line(offset: number): number {
    return this.a.lines.position(offset).line + 1;
  }

  private declare(d: A.Decl): void {
    if (d.kind === 'expect' || !d.name) return;
    const prev = this.a.symbols.get(d.name.text);
    if (prev) {
      this.report(diag('S102', d.name.start, d.name.end, `"${d.name.text}" is already declared on line ${this.line(prev.def.start)}`));
      return;
    }
    this.a.symbols.set(d.name.text, { name: d.name.text, kind: d.kind, decl: d, def: { start: d.name.start, end: d.name.end } });
  }

  /** Resolves a reference; reports unknown names (with a suggestion) and names of the wrong kind. */
  private ref(n: A.Name, kinds: SymbolKind[]): SymbolInfo | undefined {
    const sym = this.a.symbols.get(n.text);
    this.a.references.push({ span: { start: n.start, end: n.end }, name: n.text, symbol: sym });
    this.recording?.refs.push({ start: n.start, end: n.end, name: n.text });
    const want = kinds.map((k) => KIND_WORD[k]).join(' or ');
    if (!sym) {
      const candidates = [...this.a.symbols.values()].filter((s) => kinds.includes(s.kind)).map((s) => s.name);
      const near = closest(n.text, candidates);
      this.report(diag('S101', n.start, n.end, `unknown name "${n.text}": expected ${want}${near ? ` (did you mean "${near}"?)` : ''}`, { kinds, ...(near ? { replacement: near } : {}) }));
      return undefined;
    }
    if (!kinds.includes(sym.kind)) {
      this.report(diag('S103', n.start, n.end, `"${n.text}" is ${KIND_WORD[sym.kind]}, expected ${want}`));
      return undefined;
    }
    return sym;
  }

  private resolvePath(p: string): string {
    return path.resolve(this.env.baseDir, p);
  }

  private model(d: A.ModelDecl): void {
    if (!d.name) return;
    const info: ModelInfo = {};
    this.a.models.set(d.name.text, info);
    const seen = new Map<string, A.ModelProp>();
    for (const prop of d.props) {
      const prev = seen.get(prop.key.text);
      if (prev) this.report(diag('S208', prop.key.start, prop.key.end, `${prop.key.text} is already given on line ${this.line(prev.start)}`));
      else seen.set(prop.key.text, prop);
    }
    if (d.path) {
      const abs = this.resolvePath(d.path.value);
      const kind = this.env.files.kind(abs);
      if (!kind) this.report(diag('S201', d.path.start, d.path.end, `model not found: ${d.path.value}`));
      else if (kind === 'other') this.report(diag('S201', d.path.start, d.path.end, `the model path is neither a regular file nor a folder: ${d.path.value}`));
      else {
        const file = kind === 'dir' ? path.join(abs, 'model.onnx') : abs;
        if (kind === 'dir' && this.env.files.kind(file) !== 'file') this.report(diag('S201', d.path.start, d.path.end, `no model.onnx in the folder ${d.path.value}`));
        else info.file = file;
      }
    }
    const tok = seen.get('tokenizer');
    if (tok?.value) {
      const abs = this.resolvePath(tok.value.value);
      const kind = this.env.files.kind(abs);
      if (kind !== 'file') this.report(diag('S201', tok.value.start, tok.value.end, kind ? `the tokenizer is not a regular file: ${tok.value.value}` : `tokenizer not found: ${tok.value.value}`));
      else info.tokenizer = abs;
    } else if (info.file) {
      const beside = path.join(path.dirname(info.file), 'tokenizer.json');
      if (this.env.files.kind(beside) === 'file') info.tokenizer = beside;
      else this.report(diag('S201', d.path!.start, d.path!.end, 'no tokenizer.json beside the model: add tokenizer "FILE" to the model block'));
    }
    let fileHash: string | undefined;
    const pin = seen.get('sha256');
    if (pin?.value) {
      const v = pin.value.value.toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(v)) this.report(diag('S204', pin.value.start, pin.value.end, `sha256 must be 64 hexadecimal digits (this has ${pin.value.value.length} characters)`));
      else if (info.file && (fileHash = this.env.files.sha256(info.file)) !== undefined && fileHash !== v) {
        this.report(diag('S203', pin.value.start, pin.value.end, `the model file's sha256 is ${fileHash}, not the pinned value`, { replacement: fileHash }));
      }
    }
    const comp = seen.get('components');
    if (comp?.value) {
      const abs = this.resolvePath(comp.value.value);
      const kind = this.env.files.kind(abs);
      if (kind !== 'dir' && kind !== 'file') {
        this.report(diag('S201', comp.value.start, comp.value.end, kind ? `the component catalog is neither a folder nor a regular file: ${comp.value.value}` : `component catalog not found: ${comp.value.value}`));
        return;
      }
      info.components = abs;
      const { index, error } = this.env.catalogs.get(abs);
      if (!index) {
        this.report(diag('S202', comp.value.start, comp.value.end, error!.startsWith('cannot') ? error! : `bad component catalog: ${error}`));
        return;
      }
      info.catalog = index;
      const made = index.catalog.model?.sha256;
      if (made && info.file && /^[0-9a-f]{64}$/.test(made)) {
        fileHash ??= this.env.files.sha256(info.file);
        if (fileHash && fileHash !== made) this.report(diag('S207', comp.value.start, comp.value.end, `this catalog was made for a model with sha256 ${made.slice(0, 12)}…, not ${path.basename(info.file)} (${fileHash.slice(0, 12)}…): rebuild it`));
      }
    }
  }

  private data(d: A.DataDecl): void {
    if (!d.name || !d.source || !d.arg) return;
    const name = d.name.text;
    const src = d.source.text;
    if (d.field && src !== 'jsonl') this.report(diag('S209', d.field.start, d.field.end, `field applies to jsonl sources only`));
    if (d.where.length && src !== 'jsonl') this.report(diag('S209', d.where[0].start, d.where[d.where.length - 1].end, `where applies to jsonl sources only`));
    if (d.limit && (!Number.isInteger(d.limit.value) || d.limit.value <= 0)) this.report(diag('S507', d.limit.start, d.limit.end, `limit must be a positive whole number of tokens`));
    const arg = d.arg;
    let source: DataSource | undefined;
    if (src === 'udhr') {
      const docs = udhrDocs(arg.value);
      if (!docs) this.report(diag('S205', arg.start, arg.end, `unknown UDHR language "${arg.value}" (built in: deu, fra, spa, ita, eng)`));
      else {
        source = { kind: 'udhr', code: arg.value };
        if (docs.lang) this.a.datasetTags.set(name, docs.lang);
      }
    } else if (src === 'inline') {
      source = { kind: 'inline', text: arg.value };
    } else {
      const abs = this.resolvePath(arg.value);
      const kind = this.env.files.kind(abs);
      if (kind !== 'file') this.report(diag('S201', arg.start, arg.end, kind ? `the data file is not a regular file: ${arg.value}` : `data file not found: ${arg.value}`));
      else if (src === 'text') source = { kind: 'text', file: abs };
      else {
        const where: Record<string, string> = {};
        for (const w of d.where) if (w.value) where[w.tag.text] = w.value.value;
        source = { kind: 'jsonl', file: abs, field: d.field?.value ?? 'text', where };
      }
    }
    // A dataset's catalog tag: UDHR's language, a jsonl `where lang == "de"`, or a tag named like the dataset.
    const lang = d.where.find((w) => w.tag.text === 'lang')?.value?.value;
    if (lang) this.a.datasetTags.set(name, lang);
    if (source) this.a.datasetSources.set(name, source);
  }

  private guard(d: A.GuardDecl): void {
    const seen = new Set<string>();
    for (const m of d.members) {
      this.ref(m, ['data']);
      if (seen.has(m.text)) this.report(diag('S506', m.start, m.end, `"${m.text}" is already in this guard`));
      seen.add(m.text);
    }
    if (d.name && d.members.length === 0 && d.threshold) this.report(diag('S502', d.name.start, d.name.end, `guard "${d.name.text}" lists no dataset`));
    if (d.threshold && d.threshold.value <= 0) this.report(diag('S501', d.threshold.start, d.threshold.end, 'a guard threshold must be positive'));
  }

  private tagOf = (data: string): string | undefined => this.a.datasetTags.get(data);

  /** Dataset names a data-or-guard name stands for. */
  private expand(name: string): string[] {
    const s = this.a.symbols.get(name);
    if (s?.kind === 'guard') return [...new Set((s.decl as A.GuardDecl).members.map((m) => m.text))];
    return [name];
  }

  private metric(m: A.MetricNode): MetricSpec | undefined {
    if (m.fn.text !== 'loss') {
      this.report(diag('S305', m.fn.start, m.fn.end, `unknown metric "${m.fn.text}" (the metric is loss(DATA))`));
      return undefined;
    }
    if (!m.arg) return undefined;
    const sym = this.ref(m.arg, ['data', 'guard']);
    if (!sym) return undefined;
    const spec: MetricSpec = { kind: 'loss', target: { kind: sym.kind === 'guard' ? 'guard' : 'dataset', name: sym.name } };
    this.put('metricSpecs', m, spec);
    return spec;
  }

  private edit(d: A.EditDecl): void {
    const sig = this.signature();
    const hit = editCache.get(d);
    if (hit && hit.sig === sig) {
      const delta = d.start - hit.start;
      for (const x of hit.diags) this.diags.push({ ...x, start: x.start + delta, end: x.end + delta });
      for (const r of hit.refs) this.a.references.push({ span: { start: r.start + delta, end: r.end + delta }, name: r.name, symbol: this.a.symbols.get(r.name) });
      for (const [name, node, value] of hit.entries) (this.a[name] as Map<unknown, unknown>).set(node, value);
      return;
    }
    const record: EditRecord = { sig, start: d.start, diags: [], refs: [], entries: [] };
    this.recording = record;
    this.checkEdit(d);
    this.recording = undefined;
    editCache.set(d, record);
  }

  private gate(g: A.Gating, catalog: CatalogIndex | undefined): Gate | undefined {
    const method = catalog?.catalog.method.name;
    if (method === 'neuron' || method === 'svd') {
      this.report(diag('S407', g.keyword.start, g.keyword.end, `a ${method} catalog has no causal-importance functions to gate by (an SPD catalog has)`));
    }
    if (!g.threshold) return g.end > g.keyword.end ? undefined : { kind: 'ci' };
    const t = g.threshold.value;
    if (!(t >= 0 && t < 1)) {
      this.report(diag('S406', g.threshold.start, g.threshold.end, `a CI threshold is between 0 and 1 (causal importance is in [0, 1]); ${t} ${t >= 1 ? 'never opens the gate' : 'always opens it: drop "gated"'}`));
      return undefined;
    }
    return { kind: 'threshold', threshold: t };
  }

  /** A `toward` target in nats, or uniform (ln V, known once the model runs). */
  private toward(t: A.Toward): TowardSpec | undefined {
    if (t.uniform) return { kind: 'uniform' };
    if (!t.value || !t.unit) return undefined;
    if (t.unit.unit === '%') {
      this.report(diag('S505', t.unit.start, t.unit.end, '"toward" names a loss: use nats or bits, not %'));
      return undefined;
    }
    if (t.value.value <= 0) {
      this.report(diag('S501', t.value.start, t.value.end, 'a target loss must be positive'));
      return undefined;
    }
    return { kind: 'loss', nats: t.unit.unit === 'bits' ? t.value.value * Math.LN2 : t.value.value };
  }

  private checkEdit(d: A.EditDecl): void {
    const model = d.model ? this.ref(d.model, ['model']) : undefined;
    const info = model ? this.a.models.get(model.name) : undefined;
    const catalog = info?.catalog;
    if (catalog) this.put('editCatalogs', d, catalog);
    const scales = d.body.filter((s): s is A.ScaleStmt => s.kind === 'scale');
    const selects = d.body.filter((s): s is A.SelectStmt => s.kind === 'select');
    const keeps = d.body.filter((s): s is A.KeepStmt => s.kind === 'keep');
    const at = d.name ?? d;
    if (d.block && scales.length === 0) this.report(diag('S401', at.start, at.end, 'edit has no scale (add e.g. "scale 0")'));
    for (const extra of scales.slice(1)) this.report(diag('S401', extra.start, extra.end, 'an edit has one scale; this is a second one'));
    if (d.block && selects.length === 0) this.report(diag('S402', at.start, at.end, 'edit selects no components (add a select statement)'));
    const declared = model && (model.decl as A.ModelDecl).props.some((p) => p.key.text === 'components');
    const needsCatalog = model && info && !declared;
    let reportedNoCatalog = false;
    const targets = new Set<string>();
    for (const s of selects) {
      if (!s.selector) continue;
      const spec = this.selector(s.selector, catalog, targets);
      if (needsCatalog && !reportedNoCatalog) {
        reportedNoCatalog = true;
        this.report(diag('S206', s.start, s.end, `model "${model!.name}" declares no components catalog, so selectors cannot be checked or applied (add components "DIR")`));
      }
      if (spec && catalog) {
        const keys = this.a.selections.get(s.selector);
        if (keys && keys.length === 0 && !this.hasErrorIn(s)) this.report(diag('S304', s.selector.start, s.selector.end, 'this selector matches no component'));
      }
    }
    for (const sc of scales.slice(0, 1)) {
      if (!sc.value) continue;
      const gate = sc.gate ? this.gate(sc.gate, catalog) : undefined;
      const gated = gate ? { gate } : {};
      if (!('kind' in sc.value)) {
        this.put('scaleSpecs', sc, { kind: 'literal', value: sc.value.value, ...gated });
        if (sc.value.value === 1) this.report(diag('S404', sc.value.start, sc.value.end, 'scale 1 leaves the components as they are'));
        continue;
      }
      const t = sc.value;
      if (t.low && t.high && !(t.low.value < t.high.value)) this.report(diag('S403', t.low.start, t.high.end, `the range [${t.low.value}, ${t.high.value}] is empty: write the lower end first`));
      const metric = t.metric ? this.metric(t.metric) : undefined;
      const toward = t.toward ? this.toward(t.toward) : undefined;
      if (metric) {
        for (const n of this.expand(metric.target.name)) targets.add(n);
        const objective = t.objective?.text ?? (toward ? 'toward' : undefined);
        if (t.low && t.high && objective && t.low.value < t.high.value) {
          this.put('scaleSpecs', sc, { kind: 'tune', range: [t.low.value, t.high.value], objective, ...(toward ? { toward } : {}), metric, data: this.expand(metric.target.name), ...gated });
        }
      }
    }
    for (const k of keeps) {
      for (const g of k.guards) {
        const sym = this.ref(g, ['guard']);
        if (!sym) continue;
        const inside = (sym.decl as A.GuardDecl).members.map((m) => m.text).filter((m) => targets.has(m));
        if (inside.length) this.report(diag('S503', g.start, g.end, `guard "${g.text}" contains ${inside.map((x) => `"${x}"`).join(', ')}, which this edit targets: the guard would forbid the edit's own effect`));
      }
    }
    if (d.block && keeps.length === 0 && d.name) {
      const candidates = [...this.a.symbols.values()].filter((s) => s.kind === 'guard' && !(s.decl as A.GuardDecl).members.some((m) => targets.has(m.text))).map((s) => s.name);
      this.report(diag('S504', d.name.start, d.name.end, `edit "${d.name.text}" keeps no guard: nothing protects the other datasets`, { guards: candidates }));
    }
  }

  private hasErrorIn(span: A.Span): boolean {
    return [...this.a.parse.diagnostics, ...this.diags].some((x) => x.severity === 'error' && x.start >= span.start && x.end <= span.end);
  }

  /** Checks a selector, records its spec and (with a catalog) its resolved keys. */
  private selector(s: A.Selector, catalog: CatalogIndex | undefined, targets: Set<string>, ranked = false): SelectorSpec | undefined {
    let spec: SelectorSpec | undefined;
    switch (s.kind) {
      case 'key': {
        const key = s.key.value;
        if (!parseComponentKey(key)) this.report(diag('S302', s.key.start, s.key.end, `"${key}" is not a component key (keys look like "h.2.mlp.c_fc:41")`));
        else if (catalog && !keyExists(catalog, key)) this.unknownKey(s.key, catalog);
        spec = { kind: 'key', key };
        break;
      }
      case 'module': {
        if (!s.pattern) return undefined;
        spec = { kind: 'module', pattern: s.pattern.value };
        if (catalog) {
          const re = glob(s.pattern.value);
          if (![...catalog.modules.keys()].some((m) => re.test(m))) {
            // Suggest among the paths and their layer-wildcard forms (`h.*.mlp.c_fc`), since patterns are usually globs.
            const shapes = [...catalog.modules.keys()].flatMap((m) => [m, m.replace(/\.\d+\./g, '.*.')]);
            const near = closest(s.pattern.value, [...new Set(shapes)]);
            this.report(diag('S303', s.pattern.start, s.pattern.end, `no module matches "${s.pattern.value}"${near ? ` (did you mean "${near}"?)` : ''}`, near ? { replacement: JSON.stringify(near) } : undefined));
          }
        }
        break;
      }
      case 'label': {
        if (!s.regex) return undefined;
        spec = { kind: 'label', pattern: s.regex.source, flags: s.regex.flags };
        if (typeof compileLabelRegex(spec.pattern, spec.flags) === 'string') return undefined;
        // Under `top … by`, the ranking already picks the specific ones.
        if (catalog && !ranked) this.broadLabel(s, spec, catalog);
        break;
      }
      case 'top': {
        if (!s.k || !s.stat) return undefined;
        if (!Number.isInteger(s.k.value) || s.k.value <= 0) this.report(diag('S307', s.k.start, s.k.end, 'top needs a positive whole number'));
        const by = this.stat(s.stat, catalog, targets);
        const where = s.where ? this.selector(s.where, catalog, targets, true) : undefined;
        if (!by || (s.where && !where)) return undefined;
        spec = { kind: 'top', k: s.k.value, by, ...(where ? { where } : {}) };
        break;
      }
      case 'or':
      case 'minus': {
        const left = this.selector(s.left, catalog, targets, ranked);
        const right = s.right ? this.selector(s.right, catalog, targets, ranked) : undefined;
        if (!left || !right) return undefined;
        spec = { kind: s.kind, left, right };
        break;
      }
    }
    this.put('selectorSpecs', s, spec);
    if (catalog) this.put('selections', s, selectComponents(catalog, spec, this.tagOf));
    return spec;
  }

  private unknownKey(key: A.Str, catalog: CatalogIndex): void {
    const k = parseComponentKey(key.value)!;
    const m = catalog.modules.get(k.module);
    if (m) {
      this.report(diag('S301', key.start, key.end, `module ${k.module} has ${m.components} components (0 to ${m.components - 1}); there is no ${k.index}`));
      return;
    }
    const near = closest(k.module, [...catalog.modules.keys()]);
    const replacement = near ? componentKey(near, k.index) : undefined;
    this.report(diag('S301', key.start, key.end, `unknown component "${key.value}": the catalog has no module ${k.module}${replacement ? ` (did you mean "${replacement}"?)` : ''}`, replacement ? { replacement: JSON.stringify(replacement) } : undefined));
  }

  private stat(s: A.StatNode, catalog: CatalogIndex | undefined, targets: Set<string>): StatisticSpec | undefined {
    const fn = s.fn.text;
    const def = statisticDef(fn);
    if (!def) {
      this.report(diag('S305', s.fn.start, s.fn.end, `unknown statistic "${fn}" (${statisticSignatures().join(', ')})`));
      return undefined;
    }
    const kind = fn as StatisticName;
    const [least, most] = ARITY[def.args];
    if (s.args.length < least || s.args.length > most) {
      this.report(diag('S305', s.start, s.end, `${fn} takes ${ARITY_TEXT[def.args]}`));
      return undefined;
    }
    if (def.args === 'none') return { kind };
    const [first, ...rest] = s.args;
    const data = this.ref(first, ['data']);
    const versus = rest.map((r) => this.ref(r, ['data', 'guard']));
    if (!data || versus.some((v) => !v)) return undefined;
    targets.add(data.name);
    const expanded = [...new Set(versus.flatMap((v) => this.expand(v!.name)))];
    for (const n of [data.name, ...expanded]) {
      if (catalog && !catalog.tags.includes(this.tagOf(n) ?? '')) {
        const where = n === data.name ? first : rest.find((r) => this.expand(r.text).includes(n))!;
        const tag = this.tagOf(n);
        this.report(diag('S306', where.start, where.end, tag
          ? `the catalog has no statistics for tag "${tag}" of dataset "${n}" (it has: ${catalog.tags.join(', ') || 'none'})`
          : `dataset "${n}" has no catalog tag: use udhr, or jsonl with where lang == "…" (catalog tags: ${catalog.tags.join(', ') || 'none'})`));
        return undefined;
      }
    }
    return { kind, data: data.name, ...(rest.length ? { versus: expanded } : {}) };
  }

  /**
   * The seed's lesson: `label /german/i` also catches components labelled for something broader
   * ("non-English", "foreign languages in general"). Warn when most matches are not specific.
   */
  private broadLabel(s: A.LabelSel, spec: Extract<SelectorSpec, { kind: 'label' }>, catalog: CatalogIndex): void {
    const memoKey = `broad:${JSON.stringify(spec)}`;
    if (!catalog.derived.has(memoKey)) catalog.derived.set(memoKey, this.labelBreadth(spec, catalog));
    const found = catalog.derived.get(memoKey) as { message: string; key?: string } | undefined;
    if (found) this.report(diag('S308', s.start, s.end, found.message, found.key ? { replacement: JSON.stringify(found.key), key: found.key } : undefined));
  }

  private labelBreadth(spec: Extract<SelectorSpec, { kind: 'label' }>, catalog: CatalogIndex): { message: string; key?: string } | undefined {
    const infos = selectComponents(catalog, spec, this.tagOf).map((k) => catalog.byKey.get(k)!).filter((c) => c?.selectivity);
    if (infos.length < 2) return undefined;
    const best = new Map(infos.map((c) => [c, bestSelectivity(c)?.value ?? 0]));
    const broad = infos.filter((c) => best.get(c)! < SPECIFIC_SELECTIVITY);
    if (broad.length * 2 <= infos.length) return undefined;
    const specific = infos.filter((c) => best.get(c)! >= SPECIFIC_SELECTIVITY).sort((x, y) => best.get(y)! - best.get(x)!);
    const ex = broad[0];
    return {
      message: `${broad.length} of ${infos.length} components matching /${spec.pattern}/${spec.flags} are broad (selectivity below ${SPECIFIC_SELECTIVITY}× for every tag), e.g. ${ex.key} "${ex.label?.text}"`
        + (specific.length ? `; the most specific is ${specific[0].key} "${specific[0].label?.text}"` : ''),
      ...(specific.length ? { key: specific[0].key } : {}),
    };
  }

  private expect(d: A.ExpectDecl): void {
    if (d.edit) this.ref(d.edit, ['edit']);
    if (d.metric) this.metric(d.metric);
    if (d.unit && d.change?.text === 'is' && d.unit.unit === '%') this.report(diag('S505', d.unit.start, d.unit.end, '"is" compares the loss itself: use nats or bits, not %'));
    if (d.bound && d.bound.value < 0) this.report(diag('S501', d.bound.start, d.bound.end, 'the bound must not be negative (rises/falls say the direction)'));
  }

  /**
   * Two edits on the same model that scale one component: the second silently overrides the first.
   * Selections are memoized arrays, so an identical selector in a later edit is the same array: it is
   * reported as a whole, and only distinct arrays are walked key by key (this keeps a 5,000-line
   * spec with large label and module selections within the typing budget).
   */
  private overlaps(edits: A.EditDecl[]): void {
    const owners = new Map<CatalogIndex, { byOrdinal: Int32Array; seenBy: Int32Array; byArray: Map<string[], number> }>();
    edits.forEach((e, ordinal) => {
      const catalog = this.a.editCatalogs.get(e);
      if (!catalog || !e.name) return;
      if (!owners.has(catalog)) {
        const n = catalog.componentCount;
        owners.set(catalog, { byOrdinal: new Int32Array(n).fill(-1), seenBy: new Int32Array(n).fill(-1), byArray: new Map() });
      }
      const { byOrdinal, seenBy, byArray } = owners.get(catalog)!;
      // Allocated on the first clash only: most edits have none. Counts, not key sets: `seenBy` already makes keys distinct.
      let clashes: Map<number, { n: number; example: string }> | undefined;
      let repeats: Map<number, number> | undefined;
      for (const s of e.body) {
        const keys = s.kind === 'select' && s.selector ? this.a.selections.get(s.selector) : undefined;
        if (!keys?.length) continue;
        const same = byArray.get(keys);
        if (same !== undefined && same !== ordinal) {
          repeats ??= new Map();
          repeats.set(same, (repeats.get(same) ?? 0) + keys.length);
          continue;
        }
        byArray.set(keys, ordinal);
        const ids = selectionOrdinals(catalog, keys);
        for (let i = 0; i < ids.length; i++) {
          const id = ids[i];
          if (seenBy[id] === ordinal) continue;
          seenBy[id] = ordinal;
          const prev = byOrdinal[id];
          if (prev < 0) byOrdinal[id] = ordinal;
          else if (prev !== ordinal) {
            clashes ??= new Map();
            const c = clashes.get(prev);
            if (c) c.n++;
            else clashes.set(prev, { n: 1, example: keys[i] });
          }
        }
      }
      if (!repeats && !clashes) return;
      const where = (prev: number) => `edit "${edits[prev].name!.text}" (line ${this.line(edits[prev].start)})`;
      for (const [prev, n] of repeats ?? []) {
        this.report(diag('S405', e.name.start, e.name.end, `edit "${e.name.text}" repeats a selector of ${where(prev)}: both scale the same ${n} component${n > 1 ? 's' : ''}, so they are alternatives (apply one at a time with --edit)`));
      }
      for (const [prev, { n, example }] of clashes ?? []) {
        this.report(diag('S405', e.name.start, e.name.end, `edit "${e.name.text}" scales ${n} component${n > 1 ? 's' : ''} that ${where(prev)} also scales, e.g. ${example}, so they are alternatives (apply one at a time with --edit)`));
      }
    });
  }

  private unused(): void {
    const used = new Set(this.a.references.filter((r) => r.symbol).map((r) => r.name));
    for (const s of this.a.symbols.values()) {
      if ((s.kind === 'data' || s.kind === 'guard' || s.kind === 'model') && !used.has(s.name)) {
        this.report(diag('S104', s.def.start, s.def.end, `${KIND_WORD[s.kind].replace(/^an? /, '')} "${s.name}" is never used`));
      }
    }
  }
}

const globs = new Map<string, RegExp>();

/** Compiled module globs, shared by every analysis (specs repeat their patterns). */
function glob(pattern: string): RegExp {
  let re = globs.get(pattern);
  if (!re) {
    if (globs.size > 10000) globs.clear();
    globs.set(pattern, (re = moduleGlob(pattern)));
  }
  return re;
}

const udhrCache = new Map<string, { lang?: string } | null>();

/** Whether a UDHR code is known, and the language tag of its documents (read once per code). */
function udhrDocs(code: string): { lang?: string } | undefined {
  if (!udhrCache.has(code)) {
    try {
      const docs = udhrDocuments(code);
      udhrCache.set(code, { lang: docs[0]?.tags.lang });
    } catch {
      udhrCache.set(code, null);
    }
  }
  return udhrCache.get(code) ?? undefined;
}

/** The candidate nearest to `word` by edit distance, if near enough to be a likely typo. */
export function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    if (Math.abs(c.length - word.length) >= bestD) continue;
    const d = editDistance(word, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

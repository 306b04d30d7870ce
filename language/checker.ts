/**
 * The checker resolves a spec: names and kinds, files, hash pins, datasets and their tags, and each
 * selector, scale and metric against the model's catalog (the `Analysis` of `analysis.ts`), reporting
 * what stops it from building that data; then it runs the validation rules (`rules/`) for the rest.
 * Pure over its environment (file probe and catalog cache are injected), never throws, and knows
 * nothing of LSP.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataSource, udhrDocuments } from '../engine/data';
import { componentKey, exampleKey, parseComponentKey } from '../engine/catalog/key';
import { modelSha256, modelSha256Async } from '../engine/identity';
import { moduleGlob } from '../engine/onnx/modules';
import * as A from './ast';
import { Analysis, CheckEnv, FileProbe, KIND_WORD, ModelInfo, SymbolInfo, SymbolKind, isTokenCount } from './analysis';
import { CatalogCache, CatalogIndex, keyExists, selectComponents } from './catalog';
import { Diagnostic, LineIndex, diag } from './diagnostics';
import { ParseResult, parse } from './parser';
import type { Gate } from '../engine/edit/gate';
import { compileLabelRegex } from './regex';
import type { MetricSpec, SelectorSpec, TowardSpec } from './spec';
import { runRules } from './rules';
import type { RuleContext } from './rules/rule';
import { StatisticName, StatisticSpec, statisticDef, statisticSignatures } from './statistics';
import { METRICS, METRIC_NAMES, MetricName, metricDef } from './metrics';
import { ProbeFigures, probeDefinition, probeFigures } from './probes';
import { PROBE_WORDS, ProbeWord } from '../engine/geometry/probe';
import { probeDataset } from '../engine/geometry/probe-file';

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
const ARITY = { none: [0, 0], dataset: [1, 1], versus: [1, Infinity], probe: [1, 1] } as const;
const ARITY_TEXT = { none: 'no arguments', dataset: 'one dataset', versus: 'a dataset, then optionally the datasets or guards to compare with', probe: 'a probe and one of its datasets: PROBE.DATA' } as const;

export function analyze(text: string, env: CheckEnv, parsed?: ParseResult): Analysis {
  const p = parsed ?? parse(text);
  return new Checker(p, env).run();
}

type MapName = 'selectorSpecs' | 'selections' | 'scaleSpecs' | 'metricSpecs' | 'editCatalogs' | 'editTargets';

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

class Checker {
  private readonly a: Analysis;
  private readonly diags: Diagnostic[] = [];
  private readonly rules: RuleContext;

  constructor(parsed: ParseResult, private readonly env: CheckEnv) {
    this.a = {
      parse: parsed, lines: new LineIndex(parsed.text), diagnostics: [], symbols: new Map(), references: [], models: new Map(),
      datasetSources: new Map(), datasetTags: new Map(), selectorSpecs: new Map(), selections: new Map(), scaleSpecs: new Map(),
      metricSpecs: new Map(), editCatalogs: new Map(), editTargets: new Map(), env,
    };
    this.rules = { analysis: this.a, report: (d) => this.report(d), line: (o) => this.line(o), hasErrorIn: (span) => this.hasErrorIn(span) };
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
      // A probe's figures appear or change when it is trained: `alignment(…)` selections depend on them.
      const catalogs = new Set([...this.a.models.values()].flatMap((m) => (m.catalog ? [m.catalog] : [])));
      for (const s of this.a.symbols.values()) {
        if (s.kind !== 'probe') continue;
        for (const c of catalogs) {
          const f = this.probeFigures(s.decl as A.ProbeDecl, c);
          parts.push(`probe ${s.name} ${f?.file}:${f?.stamp}`);
        }
      }
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
    for (const d of decls) if (d.kind === 'probe') this.probe(d);
    for (const d of decls) if (d.kind === 'edit') this.edit(d);
    for (const d of decls) if (d.kind === 'expect') this.expect(d);
    // An edit's rules ran as it was checked (their diagnostics are replayed with it).
    for (const d of decls) if (d.kind !== 'edit') runRules(d.kind, d as never, this.rules);
    runRules('spec', decls, this.rules);
    const all = [...this.a.parse.diagnostics, ...this.diags];
    all.sort((x, y) => x.start - y.start || x.end - y.end);
    this.a.diagnostics = all;
    return this.a;
  }

  private line(offset: number): number {
    return this.a.lines.position(offset).line + 1;
  }

  private hasErrorIn(span: A.Span): boolean {
    return [...this.a.parse.diagnostics, ...this.diags].some((x) => x.severity === 'error' && x.start >= span.start && x.end <= span.end);
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
    // A property given twice (S208, a rule): the first counts.
    const seen = new Map<string, A.ModelProp>();
    for (const prop of d.props) if (!seen.has(prop.key.text)) seen.set(prop.key.text, prop);
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
    const context = seen.get('context')?.count?.value;
    if (context !== undefined && isTokenCount(context)) info.contextLength = context;
    const pin = seen.get('sha256');
    if (pin?.value) {
      const v = pin.value.value.toLowerCase();
      let fileHash: string | undefined;
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
    }
  }

  private data(d: A.DataDecl): void {
    if (!d.name || !d.source || !d.arg) return;
    const name = d.name.text;
    const src = d.source.text;
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
    for (const m of d.members) this.ref(m, ['data']);
  }

  private probe(d: A.ProbeDecl): void {
    for (const m of d.members) this.ref(m, ['data']);
  }

  private tagOf = (data: string): string | undefined => this.a.datasetTags.get(data);

  /** Dataset names a data-or-guard name stands for. */
  private expand(name: string): string[] {
    const s = this.a.symbols.get(name);
    if (s?.kind === 'guard') return [...new Set((s.decl as A.GuardDecl).members.map((m) => m.text))];
    return [name];
  }

  /** A metric of an expectation, or (`tune`) the one a scale is searched on: only metrics that tune. */
  private metric(m: A.MetricNode, use: 'expect' | 'tune'): MetricSpec | undefined {
    const def = metricDef(m.fn.text);
    const allowed = METRIC_NAMES.filter((n) => use === 'expect' || METRICS[n].tunes);
    if (!def || !allowed.includes(m.fn.text as MetricName)) {
      const what = def ? `a scale is tuned on ${allowed.map((n) => METRICS[n].signature).join(' or ')}, not ${m.fn.text}` : `unknown metric "${m.fn.text}" (${allowed.map((n) => METRICS[n].signature).join(', ')})`;
      this.report(diag('S305', m.fn.start, m.fn.end, what));
      return undefined;
    }
    if (!m.arg) return undefined;
    if (def.args === 'probe') return this.accuracyMetric(m, m.arg);
    if (m.member) {
      this.report(diag('S305', m.arg.start, m.member.end, `${m.fn.text} takes a dataset or guard, not PROBE.DATA`));
      return undefined;
    }
    const sym = this.ref(m.arg, ['data', 'guard']);
    if (!sym) return undefined;
    const spec: MetricSpec = { kind: 'loss', target: { kind: sym.kind === 'guard' ? 'guard' : 'dataset', name: sym.name } };
    this.put('metricSpecs', m, spec);
    return spec;
  }

  /** `accuracy(PROBE.DATA)` or `accuracy(PROBE.GUARD)`: every dataset named must be one the probe tells apart. */
  private accuracyMetric(m: A.MetricNode, arg: A.Name): MetricSpec | undefined {
    const probe = this.ref(arg, ['probe']);
    if (!probe) return undefined;
    const members = (probe.decl as A.ProbeDecl).members.map((x) => x.text);
    if (!m.member) {
      this.report(diag('S305', m.start, m.end, `${m.fn.text} takes one of the probe's datasets or a guard of them: ${probe.name}.${members[0] ?? 'DATA'}`));
      return undefined;
    }
    const sym = this.ref(m.member, ['data', 'guard']);
    if (!sym) return undefined;
    const outside = this.expand(sym.name).filter((d) => !members.includes(d));
    if (outside.length) {
      const which = sym.kind === 'guard' ? `guard "${sym.name}" has ${outside.map((d) => `"${d}"`).join(', ')}, which probe "${probe.name}" does not tell apart` : `probe "${probe.name}" does not tell "${sym.name}" apart`;
      this.report(diag('S603', m.member.start, m.member.end, `${which} (its datasets: ${members.join(', ') || 'none'})`));
      return undefined;
    }
    const spec: MetricSpec = { kind: 'accuracy', probe: probe.name, target: { kind: sym.kind === 'guard' ? 'guard' : 'dataset', name: sym.name } };
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
    runRules('edit', d, this.rules);
    this.recording = undefined;
    editCache.set(d, record);
  }

  private gate(g: A.Gating): Gate | undefined {
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
    const declared = model && (model.decl as A.ModelDecl).props.some((p) => p.key.text === 'components');
    const needsCatalog = model && info && !declared;
    let reportedNoCatalog = false;
    const targets = new Set<string>();
    for (const s of selects) {
      if (!s.selector) continue;
      this.selector(s.selector, catalog, targets);
      if (needsCatalog && !reportedNoCatalog) {
        reportedNoCatalog = true;
        this.report(diag('S206', s.start, s.end, `model "${model!.name}" declares no components catalog, so selectors cannot be checked or applied (add components "DIR")`));
      }
    }
    for (const sc of scales.slice(0, 1)) {
      if (!sc.value) continue;
      const gate = sc.gate ? this.gate(sc.gate) : undefined;
      const gated = gate ? { gate } : {};
      if (!('kind' in sc.value)) {
        this.put('scaleSpecs', sc, { kind: 'literal', value: sc.value.value, ...gated });
        continue;
      }
      const t = sc.value;
      const metric = t.metric ? this.metric(t.metric, 'tune') : undefined;
      const toward = t.toward ? this.toward(t.toward) : undefined;
      if (metric?.kind === 'loss') {
        for (const n of this.expand(metric.target.name)) targets.add(n);
        const objective = t.objective?.text ?? (toward ? 'toward' : undefined);
        if (t.low && t.high && objective && t.low.value < t.high.value) {
          this.put('scaleSpecs', sc, { kind: 'tune', range: [t.low.value, t.high.value], objective, ...(toward ? { toward } : {}), metric, data: this.expand(metric.target.name), ...gated });
        }
      }
    }
    for (const s of d.body) if (s.kind === 'keep') for (const g of s.guards) this.ref(g, ['guard']);
    this.put('editTargets', d, targets);
  }

  /** Checks a selector, records its spec and (with a catalog) its resolved keys. */
  private selector(s: A.Selector, catalog: CatalogIndex | undefined, targets: Set<string>): SelectorSpec | undefined {
    let spec: SelectorSpec | undefined;
    switch (s.kind) {
      case 'key': {
        const key = s.key.value;
        if (!parseComponentKey(key)) this.report(diag('S302', s.key.start, s.key.end, `"${key}" is not a component key (keys look like "${exampleKey(catalog?.catalog.modules)}")`));
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
        break;
      }
      case 'top': {
        if (!s.k || !s.stat) return undefined;
        const by = this.stat(s.stat, catalog, targets);
        const where = s.where ? this.selector(s.where, catalog, targets) : undefined;
        if (!by || (s.where && !where)) return undefined;
        spec = { kind: 'top', k: s.k.value, by, ...(where ? { where } : {}) };
        break;
      }
      case 'or':
      case 'minus': {
        const left = this.selector(s.left, catalog, targets);
        const right = s.right ? this.selector(s.right, catalog, targets) : undefined;
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
    if (def.args === 'probe') return this.probeStat(s, kind, catalog);
    if (s.member) {
      this.report(diag('S305', s.member.start, s.member.end, `${fn} takes ${ARITY_TEXT[def.args]}, not PROBE.DATA`));
      return undefined;
    }
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

  /** `alignment(PROBE.DATA)`: the probe's figures for the edit's catalog, from the file its training wrote. */
  private probeStat(s: A.StatNode, kind: StatisticName, catalog: CatalogIndex | undefined): StatisticSpec | undefined {
    const sym = this.ref(s.args[0], ['probe']);
    if (!sym) return undefined;
    const decl = sym.decl as A.ProbeDecl;
    const members = decl.members.map((m) => m.text);
    if (!s.member) {
      this.report(diag('S305', s.start, s.end, `${s.fn.text} takes one of the probe's datasets: ${sym.name}.${members[0] ?? 'DATA'}`));
      return undefined;
    }
    if (!this.ref(s.member, ['data'])) return undefined;
    if (!members.includes(s.member.text)) {
      this.report(diag('S603', s.member.start, s.member.end, `probe "${sym.name}" does not tell "${s.member.text}" apart (its datasets: ${members.join(', ') || 'none'})`));
      return undefined;
    }
    const trained = catalog && this.probeFigures(decl, catalog);
    if (!trained) return undefined;
    if (!trained.figures) {
      const why = trained.problem === 'missing' ? '' : ` (${trained.figures === undefined ? `${trained.file}: ${trained.problem}` : ''})`;
      this.report(diag('S604', s.start, s.end, `probe "${sym.name}" is not trained for this catalog yet${why}: scalpel eval, apply and geometry train it first (\`scalpel geometry --spec FILE --probe ${sym.name}\` on its own)`, { probe: sym.name }));
    }
    return { kind, data: s.member.text, probe: { name: sym.name, file: trained.file, ...(trained.stamp ? { stamp: trained.stamp } : {}) } };
  }

  /** Where a declared probe's figures are for `catalog`, and whether they exist. */
  private probeFigures(d: A.ProbeDecl, catalog: CatalogIndex): ProbeFigures | undefined {
    if (!d.probe || !d.point) return undefined;
    const names = [...new Set(d.members.map((m) => m.text))];
    const datasets = names.flatMap((name) => {
      const source = this.a.datasetSources.get(name);
      return source ? [probeDataset(name, source, (this.a.symbols.get(name)?.decl as A.DataDecl | undefined)?.limit?.value)] : [];
    });
    if (datasets.length !== names.length) return undefined;
    return probeFigures(this.env.baseDir, probeDefinition(catalog, PROBE_WORDS[d.probe.text as ProbeWord], d.point.value, datasets));
  }

  private expect(d: A.ExpectDecl): void {
    if (d.edit) this.ref(d.edit, ['edit']);
    if (d.metric) this.metric(d.metric, 'expect');
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

/**
 * Editor features over one analysed spec: completion, hover, definition, references, rename,
 * symbols, semantic tokens, folding, code actions and formatting. Results use LSP's plain data
 * types (so the server sends them unchanged and tests compare them directly), but nothing here
 * touches a connection: language/server.ts is the only module that speaks the protocol.
 */
import {
  CodeAction, CompletionItem, CompletionItemKind, CompletionList, DiagnosticSeverity, DocumentSymbol, FoldingRange, Hover, Range, SemanticTokensBuilder, SymbolKind as LspSymbolKind, TextEdit,
} from 'vscode-languageserver';
import { parseComponentKey } from '../engine/catalog/key';
import { CHANGES as CHANGE_TABLE, COMPARISONS, convertUnit, GOAL_KEYWORD, UNITS as UNIT_TABLE } from '../engine/edit/checks';
import { ComponentInfo } from '../engine/catalog/types';
import * as A from './ast';
import { CatalogIndex, componentSummary, keyExists, labelIndex, moduleKeys } from './catalog';
import type { Analysis, SymbolInfo, SymbolKind } from './analysis';
import { Diagnostic } from './diagnostics';
import { format } from './format';
import { Token } from './lexer';
import { STATISTIC_NAMES, StatisticName, STATISTICS, statisticDef } from './statistics';
import { METRICS, METRIC_NAMES, MetricName, metricDef } from './metrics';
import { BLOCK_KEYWORDS, CHANGES, MODEL_PROPS, OBJECTIVES, PROBE_KIND_WORDS, RESERVED, SELECTOR_KEYWORDS, SOURCES, TOP_KEYWORDS, UNITS } from './parser';

const MAX_COMPONENT_ITEMS = 200;

export function range(a: Analysis, s: A.Span): Range {
  return { start: a.lines.position(s.start), end: a.lines.position(s.end) };
}

/** The significant token that contains `offset` or ends right at it, and the one before. */
function tokenAt(a: Analysis, offset: number): { index: number; token?: Token } {
  const toks = a.parse.tokens;
  let lo = 0;
  let hi = toks.length - 1;
  // Last token with start < offset.
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (toks[mid].start < offset) lo = mid;
    else hi = mid - 1;
  }
  if (toks[lo].start >= offset) return { index: -1 };
  return { index: lo, token: toks[lo] };
}

function inComment(a: Analysis, offset: number): boolean {
  return a.parse.comments.some((c) => c.start < offset && offset <= c.end);
}

/** The last declaration starting before `offset` (`orAt`: at or before it); binary search, declarations are in text order. */
function declAt(a: Analysis, offset: number, orAt = false): A.Decl | undefined {
  const decls = a.parse.file.decls;
  let lo = 0;
  let hi = decls.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (decls[mid].start < offset || (orAt && decls[mid].start === offset)) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 ? decls[lo - 1] : undefined;
}

/** The model (and its catalog) an offset belongs to: the edit's model, else the only model. */
function catalogFor(a: Analysis, decl: A.Decl | undefined): CatalogIndex | undefined {
  if (decl?.kind === 'edit') {
    const c = a.editCatalogs.get(decl);
    if (c) return c;
    if (decl.model) return a.models.get(decl.model.text)?.catalog;
  }
  const withCatalog = [...a.models.values()].filter((m) => m.catalog);
  return withCatalog.length === 1 ? withCatalog[0].catalog : undefined;
}

const names = (a: Analysis, kinds: SymbolKind[]): SymbolInfo[] => [...a.symbols.values()].filter((s) => kinds.includes(s.kind));

const KIND_ITEM: Record<SymbolKind, CompletionItemKind> = { model: CompletionItemKind.Module, data: CompletionItemKind.Variable, guard: CompletionItemKind.Class, probe: CompletionItemKind.Interface, edit: CompletionItemKind.Function };

function nameItems(a: Analysis, kinds: SymbolKind[]): CompletionItem[] {
  return names(a, kinds).map((s) => ({ label: s.name, kind: KIND_ITEM[s.kind], detail: declSummary(a, s.decl) }));
}

function keywordItems(words: readonly string[], detail?: string): CompletionItem[] {
  return words.map((w) => ({ label: w, kind: CompletionItemKind.Keyword, ...(detail ? { detail } : {}) }));
}

export function completions(a: Analysis, offset: number): CompletionList {
  const empty: CompletionList = { isIncomplete: false, items: [] };
  if (inComment(a, offset)) return empty;
  const { index, token } = tokenAt(a, offset);
  const toks = a.parse.tokens;
  const decl = declAt(a, offset);
  // Inside a string: what the string stands for depends on the token before it.
  const closed = token?.kind === 'string' && token.text.length > 1 && token.text.endsWith('"');
  const contentEnd = token ? (closed ? token.end - 1 : token.end) : 0;
  if (token?.kind === 'string' && offset > token.start && offset <= contentEnd) {
    const before = toks[index - 1];
    const prefix = a.parse.text.slice(token.start + 1, offset);
    const replace = range(a, { start: token.start + 1, end: contentEnd });
    const prev = before?.text;
    if (prev === 'module') return moduleCompletions(catalogFor(a, decl), replace);
    if (prev === 'udhr') return { isIncomplete: false, items: ['deu', 'fra', 'spa', 'ita', 'eng'].map((c) => ({ label: c, kind: CompletionItemKind.Value, textEdit: { range: replace, newText: c } })) };
    if (prev === '==') return { isIncomplete: false, items: allTags(a).map((t) => ({ label: t, kind: CompletionItemKind.Value, detail: 'catalog tag', textEdit: { range: replace, newText: t } })) };
    if (decl?.kind === 'edit' && ['select', 'or', 'minus', '(', 'where'].includes(prev ?? '')) return componentCompletions(catalogFor(a, decl), prefix, replace);
    return empty;
  }
  // The word being typed (if any) is replaced; the context is the token before it.
  let ctxIndex = index;
  if (token && token.kind === 'ident' && token.end >= offset) ctxIndex = index - 1;
  const prev = ctxIndex >= 0 ? toks[ctxIndex] : undefined;
  const p = prev?.text;
  const list = (items: CompletionItem[]): CompletionList => ({ isIncomplete: false, items });
  const inStmt = (kind: string) => {
    for (let i = ctxIndex; i >= 0; i--) {
      const t = toks[i];
      if (t.kind === 'ident' && ((TOP_KEYWORDS as readonly string[]).includes(t.text) || (BLOCK_KEYWORDS as readonly string[]).includes(t.text))) return t.text === kind;
    }
    return false;
  };
  // A name being declared: nothing to offer.
  if (prev?.kind === 'ident' && ['model', 'data', 'guard', 'probe', 'edit'].includes(p!)) return empty;
  // `within 0.35 nats, ` and `rises by >= 2 nats, `: the check's goal.
  // An accuracy's bound is a bare fraction: no unit to offer, and its number ends the bound.
  const unitless = decl?.kind === 'expect' && !!decl.metric && metricDef(decl.metric.fn.text)?.bound === 'fraction';
  const endsBound = (i: number) => (unitless ? toks[i]?.kind === 'number' && decl?.kind === 'expect' && decl.bound?.start === toks[i].start : (UNITS as readonly string[]).includes(toks[i]?.text ?? '') && toks[i - 1]?.kind === 'number');
  const afterBound = (i: number) => (decl?.kind === 'guard' || decl?.kind === 'expect') && endsBound(i) && !(decl.goal?.value && decl.goal.start <= toks[i].start);
  if (p === GOAL_KEYWORD) return empty;
  if (p === ',' && afterBound(ctxIndex - 1)) return list([{ label: GOAL_KEYWORD, kind: CompletionItemKind.Keyword, detail: KEYWORD_DOC[GOAL_KEYWORD] }]);
  if (p === 'on' && !inStmt('probe')) return list(nameItems(a, ['model']));
  if (p === 'expect' && prev!.kind === 'ident') return list(nameItems(a, ['edit']));
  if (p === 'keep' || (p === ',' && inStmt('keep'))) return list(nameItems(a, ['guard']));
  if ((p === '[' || p === ',') && (inStmt('guard') || inStmt('probe'))) return list(nameItems(a, ['data']));
  if (p === '=' && inStmt('probe')) return list(keywordItems(PROBE_KIND_WORDS));
  if (p === '(' || p === ',') {
    const fn = findCall(toks, ctxIndex);
    const metric = fn === undefined ? undefined : metricDef(fn);
    if (metric && p === '(') return list(nameItems(a, metric.args === 'probe' ? ['probe'] : ['data', 'guard']));
    const def = fn === undefined ? undefined : statisticDef(fn);
    if (def?.args === 'probe' && p === '(') return list(nameItems(a, ['probe']));
    if (def && def.args !== 'none' && def.args !== 'probe' && (p === '(' || def.args === 'versus')) return list(nameItems(a, p === ',' ? ['data', 'guard'] : ['data']));
  }
  // `alignment(lang.` and `accuracy(lang.`: the probe's datasets (and in an expectation, the guards of them).
  if (p === '.' && prev?.kind === 'punct') {
    const probe = a.symbols.get(toks[ctxIndex - 1]?.text ?? '');
    if (probe?.kind === 'probe') {
      const members = new Set((probe.decl as A.ProbeDecl).members.map((m) => m.text));
      const ofProbe = (i: CompletionItem) => {
        const s = a.symbols.get(i.label)!;
        return s.kind === 'data' ? members.has(s.name) : (s.decl as A.GuardDecl).members.every((m) => members.has(m.text));
      };
      return list(nameItems(a, decl?.kind === 'expect' ? ['data', 'guard'] : ['data']).filter(ofProbe));
    }
  }
  if (p === '=' && decl?.kind === 'data') return list(keywordItems(SOURCES, 'dataset source'));
  if (p === 'scale') return list([{ label: 'tune', kind: CompletionItemKind.Keyword, detail: 'search the scale on data' }, { label: '0', kind: CompletionItemKind.Value, detail: 'remove the components' }]);
  const metricItem = (n: MetricName): CompletionItem => ({ label: n, kind: CompletionItemKind.Method, insertText: `${n}(`, detail: METRICS[n].signature });
  const tuning = METRIC_NAMES.filter((n) => METRICS[n].tunes).map(metricItem);
  if (p === ']' && inStmt('scale')) return list([...keywordItems(OBJECTIVES), ...tuning.map((i) => ({ ...i, detail: `${i.detail} toward uniform: tune until the loss reaches a target` }))]);
  if (p === 'maximize' || p === 'minimize') return list(tuning);
  if (p === ':' && decl?.kind === 'expect') return list(METRIC_NAMES.map(metricItem));
  if (inStmt('scale')) {
    const gated = { label: 'gated', kind: CompletionItemKind.Keyword, detail: KEYWORD_DOC.gated };
    if (p === ')') return list([...(scaleHasObjective(toks, ctxIndex) ? [] : [{ label: 'toward', kind: CompletionItemKind.Keyword, detail: KEYWORD_DOC.toward }]), gated]);
    if ((prev?.kind === 'number' && toks[ctxIndex - 1]?.text === 'scale') || p === 'uniform' || p === 'nats' || p === 'bits') return list([gated]);
    if (p === 'toward') return list([{ label: 'uniform', kind: CompletionItemKind.Keyword, detail: KEYWORD_DOC.uniform }]);
    if (p === 'gated') return list([{ label: 'where ci > 0.5', kind: CompletionItemKind.Snippet, insertText: 'where ci > ${1:0.5}', insertTextFormat: 2 as const, detail: 'only where the causal importance exceeds a threshold' }]);
    if (p === 'where') return list([{ label: 'ci', kind: CompletionItemKind.Keyword, detail: 'the component\'s causal importance, in [0, 1]' }]);
  }
  if (p === 'by' && decl?.kind === 'edit') {
    return list(STATISTIC_NAMES.map((s) => ({ label: s, kind: CompletionItemKind.Method, detail: statDoc(s) })));
  }
  if (p === ')' && decl?.kind === 'expect') return list(CHANGES.map((c) => ({ label: c, kind: CompletionItemKind.Keyword, detail: CHANGE_TABLE[c] })));
  if ((p === 'by' || p === 'is') && decl?.kind === 'expect') return list(keywordItems(COMPARISONS));
  if (prev?.kind === 'number' && (decl?.kind === 'guard' || decl?.kind === 'expect') && !unitless) return list(UNITS.map((u) => ({ label: u, kind: CompletionItemKind.Unit, detail: UNIT_TABLE[u] })));
  if (afterBound(ctxIndex)) {
    const unit = unitless ? '' : ` ${toks[ctxIndex].text}`;
    const goal: CompletionItem = { label: `, ${GOAL_KEYWORD} …`, kind: CompletionItemKind.Snippet, insertText: `, ${GOAL_KEYWORD} \${1:0}${unit}`, insertTextFormat: 2 as const, detail: KEYWORD_DOC[GOAL_KEYWORD] };
    return list([goal, ...keywordItems(TOP_KEYWORDS)]);
  }
  if (['select', 'or', 'minus', 'where'].includes(p ?? '') && decl?.kind === 'edit') {
    return list([
      ...keywordItems(SELECTOR_KEYWORDS, 'selector'),
      { label: '"…"', kind: CompletionItemKind.Snippet, detail: 'a component key', insertText: '"$1"', insertTextFormat: 2 as const, command: { title: 'suggest', command: 'editor.action.triggerSuggest' } },
    ]);
  }
  if (prev?.kind === 'string' && decl?.kind === 'data') return list(keywordItems(['field', 'where', 'limit']));
  if (decl?.kind === 'model' && decl.block && offset > decl.block.start && offset < decl.block.end) return list(keywordItems(MODEL_PROPS));
  if (decl?.kind === 'edit' && decl.block && offset > decl.block.start && (offset < decl.block.end || !a.parse.text.slice(decl.block.start, decl.block.end).endsWith('}'))) {
    return list([...keywordItems(BLOCK_KEYWORDS), ...keywordItems(['or', 'minus'], 'set operator')]);
  }
  return list(keywordItems(TOP_KEYWORDS));
}

/** The function name of the innermost open call before token `i` (`selectivity(german, |`). */
function findCall(toks: Token[], i: number): string | undefined {
  let depth = 0;
  for (let j = i; j >= 0; j--) {
    const t = toks[j].text;
    if (t === ')') depth++;
    else if (t === '(') {
      if (depth === 0) return toks[j - 1]?.kind === 'ident' ? toks[j - 1].text : undefined;
      depth--;
    }
  }
  return undefined;
}

function allTags(a: Analysis): string[] {
  return [...new Set([...a.models.values()].flatMap((m) => m.catalog?.tags ?? []))].sort();
}

function moduleCompletions(catalog: CatalogIndex | undefined, replace: Range): CompletionList {
  if (!catalog) return { isIncomplete: false, items: [] };
  const paths = [...catalog.modules.keys()];
  const globs = [...new Set(paths.map((m) => m.replace(/\.\d+\./g, '.*.')))].filter((g) => !paths.includes(g));
  const items: CompletionItem[] = [
    ...paths.map((m) => ({ label: m, kind: CompletionItemKind.Module, detail: `${catalog.modules.get(m)!.components} components`, textEdit: { range: replace, newText: m } })),
    ...globs.map((g) => ({ label: g, kind: CompletionItemKind.Folder, detail: 'every layer', textEdit: { range: replace, newText: g } })),
  ];
  return { isIncomplete: false, items };
}

/**
 * Component keys inside a string. With 40,000 components the list is narrowed on the server:
 * module paths first, then that module's components once a `:` is typed, or components whose
 * label contains the typed text. `isIncomplete` makes the editor ask again as the user types.
 */
function componentCompletions(catalog: CatalogIndex | undefined, prefix: string, replace: Range): CompletionList {
  if (!catalog) return { isIncomplete: false, items: [] };
  const item = (c: ComponentInfo | undefined, key: string, filter?: string, sort?: string): CompletionItem => ({
    label: key,
    kind: CompletionItemKind.Constant,
    detail: componentSummary(c),
    // The card comes with completionItem/resolve: 200 cards per keystroke would dominate the reply.
    data: { catalog: catalog.dir, key },
    ...(filter ? { filterText: filter } : {}),
    ...(sort ? { sortText: sort } : {}),
    textEdit: { range: replace, newText: key },
  });
  const colon = prefix.indexOf(':');
  if (colon >= 0) {
    const m = catalog.modules.get(prefix.slice(0, colon));
    if (!m) return { isIncomplete: false, items: [] };
    const idx = prefix.slice(colon + 1);
    const keys = moduleKeys(m).filter((k) => k.slice(colon + 1).startsWith(idx));
    return {
      isIncomplete: keys.length > MAX_COMPONENT_ITEMS,
      items: keys.slice(0, MAX_COMPONENT_ITEMS).map((k, i) => item(catalog.byKey.get(k), k, undefined, String(i).padStart(6, '0'))),
    };
  }
  const items: CompletionItem[] = [];
  for (const [p, m] of catalog.modules) {
    if (p.startsWith(prefix)) {
      items.push({ label: `${p}:`, kind: CompletionItemKind.Module, detail: `${m.components} components`, textEdit: { range: replace, newText: `${p}:` }, command: { title: 'suggest', command: 'editor.action.triggerSuggest' } });
    }
  }
  if (prefix.length >= 2) {
    const needle = prefix.toLowerCase();
    let n = 0;
    for (const { lower, component: c } of labelIndex(catalog)) {
      if (!lower.includes(needle)) continue;
      items.push(item(c, c.key, `${prefix} ${c.label!.text} ${c.key}`, `z${String(n).padStart(6, '0')}`));
      if (++n >= MAX_COMPONENT_ITEMS) break;
    }
  }
  return { isIncomplete: true, items };
}

/** Adds the component card to a component item (completionItem/resolve). */
export function resolveCompletion(item: CompletionItem, catalogOf: (dir: string) => CatalogIndex | undefined): CompletionItem {
  const data = item.data as { catalog?: string; key?: string } | undefined;
  const catalog = data?.catalog ? catalogOf(data.catalog) : undefined;
  if (!catalog || !data?.key || !keyExists(catalog, data.key)) return item;
  return { ...item, documentation: { kind: 'markdown', value: componentCard(catalog, data.key) } };
}

/** `selectivity(DATA[, OTHERS…]): mean |activation| …`, the completion detail and hover of a statistic. */
const statDoc = (name: StatisticName) => {
  const d = STATISTICS[name];
  return d.args === 'none' ? d.doc : `${d.signature}: ${d.doc}`;
};


/** Whether the scale statement around token `i` names maximize/minimize (then `toward` does not apply). */
function scaleHasObjective(toks: Token[], i: number): boolean {
  for (let j = i; j >= 0 && toks[j].text !== 'scale'; j--) if ((OBJECTIVES as readonly string[]).includes(toks[j].text)) return true;
  return false;
}

const KEYWORD_DOC: Record<string, string> = {
  model: 'model NAME from "FILE or FOLDER" { tokenizer "…" components "…" sha256 "…" context N }',
  data: 'data NAME = udhr "deu" | text "f.txt" | jsonl "f.jsonl" [field "text"] [where TAG == "v" and …] | inline "…"  [limit N tokens]',
  guard: 'guard NAME = [DATA, …] within NUMBER nats|bits|% [, goal NUMBER UNIT]: after an edit that keeps it, each dataset\'s loss moves by at most the threshold',
  probe: 'probe NAME = logistic|linear on "POINT" over [DATA, …]: a linear probe per dataset at a capture point (h.2.resid, …); scalpel geometry SPEC --probe NAME trains and scores it',
  logistic: 'logistic regression per dataset (classes weighted equally)',
  linear: "the mean-difference probe: each dataset's mean minus the others', whitened by the shrunk within-dataset covariance",
  edit: 'edit NAME on MODEL { select … scale … keep … }',
  expect: 'expect EDIT: loss(DATA or GUARD) rises|falls|moves by >= N nats, or is <= N nats [, goal N nats]; accuracy(PROBE.DATA or PROBE.GUARD) falls|moves by <= F, or is >= F [, goal F] (F a fraction from 0 to 1)',
  [GOAL_KEYWORD]: `${GOAL_KEYWORD} NUMBER UNIT: what the check aims at, stricter than its bound and in its unit (an accuracy's is a bare fraction); the bound decides pass or fail, the ${GOAL_KEYWORD} is reported as met or missed by how much`,
  select: 'select SELECTOR: "module:index", module "glob", label /regex/, top K by STAT [where SELECTOR], combined with or / minus',
  scale: 'scale NUMBER, or scale tune in [LOW, HIGH] maximize|minimize loss(DATA), or … loss(DATA) toward uniform; then optionally gated [where ci > T]',
  gated: 'gated: scale the components only where they are causally important (gate = CI); `gated where ci > T`: fully where CI > T, not at all elsewhere',
  toward: 'METRIC toward uniform | N nats: tune until the metric reaches this loss (minimizes |metric − target|)',
  uniform: 'uniform: the loss of a uniform guess over the vocabulary, ln V nats: the data is forgotten, not inverted',
  keep: 'keep GUARD, …: the edit must keep these guards',
  top: 'top K by STAT [where SELECTOR]: the K components with the highest statistic',
  module: 'module "glob": every component of the matching modules (`*` matches any run, `?` one character)',
  label: 'label /regex/flags: components whose label matches',
  or: 'union of two selections', minus: 'the left selection without the right one',
  tune: 'tune in [LOW, HIGH] maximize|minimize METRIC, or tune in [LOW, HIGH] METRIC toward TARGET: search the scale factor on the metric\'s data',
  ...Object.fromEntries(STATISTIC_NAMES.map((n) => [n, statDoc(n)])),
  ...Object.fromEntries(METRIC_NAMES.map((n) => [n, `${METRICS[n].signature}: ${METRICS[n].doc}`])),
};

export function hover(a: Analysis, offset: number): Hover | null {
  const { token } = tokenAt(a, offset + 1);
  if (!token || token.end < offset || token.start > offset) return null;
  const span = { start: token.start, end: token.end };
  const md = (value: string): Hover => ({ contents: { kind: 'markdown', value }, range: range(a, span) });
  const decl = declAt(a, offset + 1);
  const catalog = catalogFor(a, decl);
  // Selectors first: the node whose span is exactly this token.
  const sel = findSelector(a, token);
  if (sel && catalog) {
    if (sel.kind === 'key') {
      if (!keyExists(catalog, sel.key.value)) return null;
      return md(componentCard(catalog, sel.key.value));
    }
    const keys = a.selections.get(sel) ?? [];
    return md(`**${selectorTitle(sel)}** matches ${keys.length} component${keys.length === 1 ? '' : 's'}\n\n${keys.slice(0, 10).map((k) => `- \`${k}\` ${componentSummary(catalog.byKey.get(k))}`).join('\n')}${keys.length > 10 ? `\n- … ${keys.length - 10} more` : ''}`.trimEnd());
  }
  if (token.kind === 'ident') {
    const sym = symbolAt(a, offset);
    if (sym) return md(`\`\`\`scalpel\n${declSummary(a, sym.decl)}\n\`\`\`\n${symbolDetail(a, sym)}`.trimEnd());
    const doc = KEYWORD_DOC[token.text];
    if (doc) return md(`**${token.text}**: ${doc}`);
  }
  return null;
}

function selectorTitle(s: A.Selector): string {
  switch (s.kind) {
    case 'module': return `module "${s.pattern?.value ?? ''}"`;
    case 'label': return `label /${s.regex?.source ?? ''}/${s.regex?.flags ?? ''}`;
    case 'top': return `top ${s.k?.value ?? ''} by ${s.stat?.fn.text ?? ''}`;
    default: return s.kind;
  }
}

/** The selector node a token belongs to: a key string, `module "…"`, `label /…/` or the `top` keyword. */
function findSelector(a: Analysis, token: Token): A.Selector | undefined {
  for (const s of a.selectorSpecs.keys()) {
    if (s.kind === 'key' && s.key.start === token.start) return s;
    if ((s.kind === 'module' && (s.pattern?.start === token.start || s.start === token.start)) || (s.kind === 'label' && (s.regex?.start === token.start || s.start === token.start))) return s;
    if (s.kind === 'top' && s.start === token.start) return s;
  }
  return undefined;
}

/** Markdown card of one component: label, module, size and per-tag activation summary. */
export function componentCard(catalog: CatalogIndex, key: string): string {
  const c = catalog.byKey.get(key);
  const k = parseComponentKey(key)!;
  const m = catalog.modules.get(k.module);
  const lines = [`**${key}**${c?.label ? ` — ${c.label.text} *(${c.label.source}${c.label.confidence !== undefined ? `, ${c.label.confidence.toFixed(2)}` : ''})*` : ''}`, ''];
  if (m) lines.push(`module \`${m.path}\` (${m.dIn}→${m.dOut}) · component ${k.index} of ${m.components}${c?.norm !== undefined ? ` · norm ${c.norm.toFixed(3)}` : ''}`);
  if (!c) return lines.concat(['', 'no metadata in the catalog']).join('\n');
  if (c.stats) {
    // Ablation: Δloss when the component is removed, the output side of what the statistics measure.
    const ablation = c.ablation ? ' ablation Δloss |' : '';
    lines.push('', `| tag | mean \\|act\\| | firing | selectivity |${ablation}`, `|---|---|---|---|${ablation ? '---|' : ''}`);
    for (const [tag, s] of Object.entries(c.stats)) {
      const sel = c.selectivity?.[tag];
      const cut = c.ablation?.[tag];
      lines.push(`| ${tag} | ${s.meanAbs.toFixed(3)} | ${(s.firingRate * 100).toFixed(0)}% | ${sel !== undefined ? `${sel.toFixed(1)}×` : ''} |${ablation ? ` ${cut !== undefined ? `${cut >= 0 ? '+' : ''}${cut.toFixed(4)}` : ''} |` : ''}`);
    }
  }
  if (c.contexts?.length) lines.push('', '**Top contexts**', ...c.contexts.slice(0, 3).map((x) => `- ${x.tag}: ${x.text.replace(/[`*_]/g, '\\$&')} (${x.activation.toFixed(2)})`));
  if (c.promotes?.length) lines.push('', `**Promotes** ${c.promotes.slice(0, 5).map((p) => `\`${p.token}\``).join(' ')}`);
  return lines.join('\n');
}

/** The first line of a declaration as written (comments and layout aside). */
function declSummary(a: Analysis, d: A.Decl): string {
  const text = a.parse.text.slice(d.start, d.kind === 'edit' || d.kind === 'model' ? (d.block?.start ?? d.end) : d.end).trim();
  return text.split('\n').map((l) => l.trim()).join(' ');
}

function symbolDetail(a: Analysis, s: SymbolInfo): string {
  if (s.kind === 'data') {
    const tag = a.datasetTags.get(s.name);
    return tag ? `catalog tag \`${tag}\`` : '';
  }
  if (s.kind === 'edit') {
    const d = s.decl as A.EditDecl;
    const keys = new Set(d.body.flatMap((x) => (x.kind === 'select' && x.selector ? a.selections.get(x.selector) ?? [] : [])));
    return a.editCatalogs.has(d) ? `selects ${keys.size} component${keys.size === 1 ? '' : 's'}` : '';
  }
  if (s.kind === 'model') {
    const m = a.models.get(s.name);
    return m?.catalog ? `${m.catalog.catalog.components.length} components in ${m.catalog.modules.size} modules (${m.catalog.catalog.method.name})` : '';
  }
  return '';
}

function symbolAt(a: Analysis, offset: number): SymbolInfo | undefined {
  for (const s of a.symbols.values()) if (s.def.start <= offset && offset <= s.def.end) return s;
  for (const r of a.references) if (r.span.start <= offset && offset <= r.span.end) return r.symbol;
  return undefined;
}

export function definition(a: Analysis, offset: number): Range | null {
  const s = symbolAt(a, offset);
  return s ? range(a, s.def) : null;
}

export function references(a: Analysis, offset: number, includeDeclaration: boolean): Range[] {
  const s = symbolAt(a, offset);
  if (!s) return [];
  const spans = a.references.filter((r) => r.symbol === s).map((r) => r.span);
  return (includeDeclaration ? [s.def, ...spans] : spans).sort((x, y) => x.start - y.start).map((x) => range(a, x));
}

export function prepareRename(a: Analysis, offset: number): { range: Range; placeholder: string } | null {
  const s = symbolAt(a, offset);
  if (!s) return null;
  const at = s.def.start <= offset && offset <= s.def.end ? s.def : a.references.find((r) => r.symbol === s && r.span.start <= offset && offset <= r.span.end)!.span;
  return { range: range(a, at), placeholder: s.name };
}

/** Edits for a rename, or an error message when the new name is not allowed. */
export function rename(a: Analysis, offset: number, newName: string): TextEdit[] | string {
  const s = symbolAt(a, offset);
  if (!s) return 'nothing to rename here';
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(newName)) return `"${newName}" is not a name (letters, digits and _, not starting with a digit)`;
  if (RESERVED.has(newName)) return `"${newName}" is a keyword`;
  if (newName !== s.name && a.symbols.has(newName)) return `"${newName}" is already declared`;
  return [s.def, ...a.references.filter((r) => r.symbol === s).map((r) => r.span)].map((sp) => ({ range: range(a, sp), newText: newName }));
}

export function documentSymbols(a: Analysis): DocumentSymbol[] {
  const out: DocumentSymbol[] = [];
  for (const d of a.parse.file.decls) {
    const kind = { model: LspSymbolKind.Module, data: LspSymbolKind.Variable, guard: LspSymbolKind.Class, probe: LspSymbolKind.Interface, edit: LspSymbolKind.Function, expect: LspSymbolKind.Event }[d.kind];
    const nameSpan = d.kind === 'expect' ? (d.edit ?? d) : d.name;
    if (!nameSpan) continue;
    const name = d.kind === 'expect' ? declSummary(a, d).replace(/^expect\s+/, '') : d.name!.text;
    out.push({ name, kind, detail: d.kind, range: range(a, d), selectionRange: range(a, nameSpan) });
  }
  return out;
}

const TOKEN_TYPES = ['keyword', 'namespace', 'variable', 'class', 'function', 'method', 'string', 'number', 'regexp', 'comment', 'operator', 'property'] as const;
type TokenType = (typeof TOKEN_TYPES)[number];

export const SEMANTIC_LEGEND = { tokenTypes: [...TOKEN_TYPES], tokenModifiers: ['declaration'] };

const SYMBOL_TOKEN: Record<SymbolKind, TokenType> = { model: 'namespace', data: 'variable', guard: 'class', probe: 'class', edit: 'function' };
const KEYWORDS = new Set<string>([...RESERVED, ...MODEL_PROPS, ...SOURCES, ...CHANGES, ...OBJECTIVES, ...UNITS, ...PROBE_KIND_WORDS, 'tune']);
const OPERATORS = new Set<string>(['==', ...COMPARISONS, '%']);

/** LSP's relative encoding (SemanticTokensBuilder): one token per lexeme. */
export function semanticTokens(a: Analysis): number[] {
  const refs = new Map<number, SymbolInfo | undefined>(a.references.map((r) => [r.span.start, r.symbol]));
  const defs = new Map<number, SymbolInfo>([...a.symbols.values()].map((s) => [s.def.start, s]));
  const whereTags = new Set(a.parse.file.decls.flatMap((d) => (d.kind === 'data' ? d.where.map((w) => w.tag.start) : [])));
  const items = [...a.parse.tokens, ...a.parse.comments].filter((t) => t.kind !== 'eof').sort((x, y) => x.start - y.start);
  const builder = new SemanticTokensBuilder();
  for (const t of items) {
    let type: TokenType | undefined;
    let declaration = false;
    if (t.kind === 'ident') {
      const def = defs.get(t.start);
      const ref = refs.get(t.start);
      if (def) (type = SYMBOL_TOKEN[def.kind]), (declaration = true);
      else if (ref) type = SYMBOL_TOKEN[ref.kind];
      else if (whereTags.has(t.start)) type = 'property';
      else if (statisticDef(t.text) || metricDef(t.text)) type = 'method';
      else if (KEYWORDS.has(t.text)) type = 'keyword';
    } else if (t.kind === 'string') type = 'string';
    else if (t.kind === 'number') type = 'number';
    else if (t.kind === 'regex') type = 'regexp';
    else if (t.kind === 'comment') type = 'comment';
    else if (t.kind === 'punct' && OPERATORS.has(t.text)) type = 'operator';
    if (type === undefined) continue;
    const p = a.lines.position(t.start);
    // Tokens never span lines (strings and regexes end at the line's end).
    builder.push(p.line, p.character, t.end - t.start, TOKEN_TYPES.indexOf(type), declaration ? 1 : 0);
  }
  return builder.build().data;
}

export function foldingRanges(a: Analysis): FoldingRange[] {
  const out: FoldingRange[] = [];
  const fold = (s: A.Span, kind?: string) => {
    const start = a.lines.position(s.start).line;
    const end = a.lines.position(s.end).line;
    if (end > start) out.push({ startLine: start, endLine: end - (a.parse.text[s.end - 1] === '}' ? 1 : 0), ...(kind ? { kind } : {}) });
  };
  for (const d of a.parse.file.decls) {
    if ((d.kind === 'edit' || d.kind === 'model') && d.block) fold(d.block);
    else if ((d.kind === 'guard' || d.kind === 'probe') && d.members.length) fold(d);
  }
  // Runs of whole-line comments.
  let run: Token[] = [];
  const flush = () => {
    if (run.length > 1) out.push({ startLine: a.lines.position(run[0].start).line, endLine: a.lines.position(run[run.length - 1].start).line, kind: 'comment' });
    run = [];
  };
  for (const c of a.parse.comments) {
    const line = a.lines.position(c.start).line;
    const prev = run[run.length - 1];
    if (prev && a.lines.position(prev.start).line !== line - 1) flush();
    run.push(c);
  }
  flush();
  return out.sort((x, y) => x.startLine - y.startLine);
}

export function formatting(a: Analysis): TextEdit[] {
  const out = format(a.parse.text, a.parse);
  if (out === undefined || out === a.parse.text) return [];
  return [{ range: range(a, { start: 0, end: a.parse.text.length }), newText: out }];
}

function toLspDiagnostic(a: Analysis, d: Diagnostic) {
  return { range: range(a, d), severity: d.severity === 'error' ? DiagnosticSeverity.Error : d.severity === 'warning' ? DiagnosticSeverity.Warning : DiagnosticSeverity.Information, code: d.code, source: 'scalpel', message: d.message };
}

/** The most diagnostics published for one document: more are noise, and each costs the editor time. */
export const MAX_PUBLISHED_DIAGNOSTICS = 1000;

export function lspDiagnostics(a: Analysis) {
  const shown = a.diagnostics.slice(0, MAX_PUBLISHED_DIAGNOSTICS).map((d) => toLspDiagnostic(a, d));
  const more = a.diagnostics.length - shown.length;
  if (more > 0) shown.push({ range: shown[shown.length - 1].range, severity: DiagnosticSeverity.Information, code: 'S009', source: 'scalpel', message: `${more} more problems are not shown` });
  return shown;
}

/** Quick fixes for the analysis' own diagnostics that overlap `span` (the client's copies are not trusted). */
export function codeActions(a: Analysis, span: A.Span, uri: string): CodeAction[] {
  const actions: CodeAction[] = [];
  const fix = (title: string, d: Diagnostic, edits: TextEdit[], preferred = false): void => {
    actions.push({ title, kind: 'quickfix', diagnostics: [toLspDiagnostic(a, d)], edit: { changes: { [uri]: edits } }, ...(preferred ? { isPreferred: true } : {}) });
  };
  for (const d of a.diagnostics) {
    if (d.end < span.start || d.start > span.end) continue;
    const data = (d.data ?? {}) as { replacement?: string; key?: string; guards?: string[]; kinds?: SymbolKind[] };
    if ((d.code === 'S101' || d.code === 'S301' || d.code === 'S303') && data.replacement) {
      fix(`Change to ${data.replacement}`, d, [{ range: range(a, d), newText: data.replacement }], true);
    }
    if (d.code === 'S203' && data.replacement) {
      fix('Update the pin to the model file\'s sha256', d, [{ range: range(a, d), newText: `"${data.replacement}"` }], true);
    }
    if (d.code === 'S508') {
      const check = declAt(a, d.start, true);
      if (check?.kind === 'guard' || check?.kind === 'expect') {
        const bound = check.kind === 'guard' ? check.threshold : check.bound;
        const { goal, unit } = check;
        // A bare bound (an accuracy's) has no unit: the goal follows its number.
        const boundEnd = unit ?? bound;
        if (goal?.value && bound && boundEnd) {
          const text = (n: A.Num) => a.parse.text.slice(n.start, n.end);
          fix(`Remove the ${GOAL_KEYWORD} (the bound asks as much)`, d, [{ range: range(a, { start: boundEnd.end, end: goal.end }), newText: '' }], true);
          fix(`Swap the ${GOAL_KEYWORD} and the bound`, d, [{ range: range(a, bound), newText: text(goal.value) }, { range: range(a, goal.value), newText: text(bound) }]);
        }
      }
    }
    if (d.code === 'S509') {
      const check = declAt(a, d.start, true);
      if (check?.kind === 'guard' || check?.kind === 'expect') {
        const { goal, unit } = check;
        const converted = goal?.value && goal.unit && unit ? convertUnit(goal.value.value, goal.unit.unit, unit.unit) : undefined;
        if (converted !== undefined && goal?.value && goal.unit && unit) {
          const value = String(Number(converted.toPrecision(4)));
          fix(`Write the ${GOAL_KEYWORD} in ${unit.unit} (${value} ${unit.unit})`, d, [{ range: range(a, { start: goal.value.start, end: goal.unit.end }), newText: `${value} ${unit.unit}` }], true);
        }
      }
    }
    if (d.code === 'S308' && data.key) {
      fix(`Narrow to ${data.key} (the component labelled for the target alone)`, d, [{ range: range(a, d), newText: JSON.stringify(data.key) }], true);
    }
    const around = declAt(a, d.start, true);
    const edit = around?.kind === 'edit' && d.end <= around.end ? around : undefined;
    if (d.code === 'S504' && edit?.block) {
      const close = { start: edit.block.end - 1, end: edit.block.end - 1 };
      for (const g of data.guards ?? []) fix(`Keep guard ${g}`, d, [{ range: range(a, close), newText: `  keep ${g}\n` }]);
      if (!data.guards?.length) {
        const name = freshName(a, 'others');
        fix(`Add guard ${name} over the other datasets and keep it`, d, [
          { range: range(a, { start: edit.start, end: edit.start }), newText: guardText(a, edit, name) },
          { range: range(a, close), newText: `  keep ${name}\n` },
        ]);
      }
    }
    if (d.code === 'S101' && edit && data.kinds?.length === 1 && data.kinds[0] === 'guard' && !data.replacement) {
      const name = a.parse.text.slice(d.start, d.end);
      fix(`Declare guard ${name} over the other datasets`, d, [{ range: range(a, { start: edit.start, end: edit.start }), newText: guardText(a, edit, name) }]);
    }
  }
  return actions;
}

/** `guard NAME = [datasets the edit does not target] within 0.05 nats` and a newline. */
function guardText(a: Analysis, edit: A.EditDecl, name: string): string {
  const targets = new Set<string>();
  for (const s of edit.body) {
    if (s.kind === 'scale' && s.value && 'kind' in s.value && s.value.metric?.arg) targets.add(s.value.metric.arg.text);
  }
  for (const r of a.references) if (r.span.start > edit.start && r.span.end < edit.end && r.symbol?.kind === 'data') targets.add(r.name);
  const others = names(a, ['data']).map((s) => s.name).filter((n) => !targets.has(n));
  return `guard ${name} = [${others.join(', ')}] within 0.05 nats\n\n`;
}

function freshName(a: Analysis, base: string): string {
  let n = base;
  for (let i = 2; a.symbols.has(n); i++) n = `${base}${i}`;
  return n;
}


/** Rules on model and dataset declarations, and on names declared but never used. */
import * as path from 'node:path';
import { KIND_WORD, isTokenCount } from '../analysis';
import { diag } from '../diagnostics';
import { rule } from './rule';

const HEX64 = /^[0-9a-f]{64}$/;

export const declarationRules = [
  rule('model', ['S208', 'S507'], (d, ctx) => {
    const seen = new Map<string, number>();
    for (const prop of d.props) {
      const prev = seen.get(prop.key.text);
      if (prev !== undefined) ctx.report(diag('S208', prop.key.start, prop.key.end, `${prop.key.text} is already given on line ${ctx.line(prev)}`));
      else seen.set(prop.key.text, prop.start);
      if (prop.count && !isTokenCount(prop.count.value)) ctx.report(diag('S507', prop.count.start, prop.count.end, `context must be a positive whole number of tokens`));
    }
  }),

  rule('model', ['S207'], (d, ctx) => {
    const info = d.name && ctx.analysis.models.get(d.name.text);
    const comp = d.props.find((p) => p.key.text === 'components')?.value;
    const made = info && info.catalog?.catalog.model?.sha256;
    if (!info?.file || !comp || !made || !HEX64.test(made)) return;
    const fileHash = ctx.analysis.env.files.sha256(info.file);
    if (fileHash && fileHash !== made) {
      ctx.report(diag('S207', comp.start, comp.end, `this catalog was made for a model with sha256 ${made.slice(0, 12)}…, not ${path.basename(info.file)} (${fileHash.slice(0, 12)}…): rebuild it`));
    }
  }),

  rule('data', ['S209', 'S507'], (d, ctx) => {
    if (!d.name || !d.source || !d.arg) return;
    if (d.field && d.source.text !== 'jsonl') ctx.report(diag('S209', d.field.start, d.field.end, `field applies to jsonl sources only`));
    if (d.where.length && d.source.text !== 'jsonl') ctx.report(diag('S209', d.where[0].start, d.where[d.where.length - 1].end, `where applies to jsonl sources only`));
    if (d.limit && !isTokenCount(d.limit.value)) ctx.report(diag('S507', d.limit.start, d.limit.end, `limit must be a positive whole number of tokens`));
  }),

  rule('spec', ['S104'], (_decls, ctx) => {
    const used = new Set(ctx.analysis.references.filter((r) => r.symbol).map((r) => r.name));
    for (const s of ctx.analysis.symbols.values()) {
      if ((s.kind === 'data' || s.kind === 'guard' || s.kind === 'model') && !used.has(s.name)) {
        ctx.report(diag('S104', s.def.start, s.def.end, `${KIND_WORD[s.kind].replace(/^an? /, '')} "${s.name}" is never used`));
      }
    }
  }),
];

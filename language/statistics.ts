/**
 * The selector statistics (`top K by STAT`), one entry each: how it is written, what it means and how
 * a catalog component's value is computed. The parser's messages, the checker, completion, hover,
 * semantic tokens, the grammar test and docs/language.md's table all read this table; adding a
 * statistic is one entry here (and, if the catalog lacks its figure, the code that records it).
 */
import type { ComponentInfo } from '../engine/catalog/types';
import { alignmentOf } from './probes';

/**
 * A statistic as the checker resolved it: `data` and `versus` are dataset names (guards expanded).
 * `data` is present for every statistic that takes arguments.
 */
export interface StatisticSpec {
  kind: StatisticName;
  data?: string;
  versus?: string[];
  /** `alignment(PROBE.DATA)`: the probe and its figures file (`stamp`: the file's size and mtime, absent when untrained). */
  probe?: { name: string; file: string; stamp?: string };
}

/** Maps a dataset name to its catalog tag (e.g. `german` → `de`). */
export type TagOf = (data: string) => string | undefined;

interface StatisticDef {
  /** `none`: `norm`; `dataset`: `f(DATA)`; `versus`: `f(DATA)` or `f(DATA, OTHER, …)` (datasets or guards); `probe`: `f(PROBE.DATA)`. */
  args: 'none' | 'dataset' | 'versus' | 'probe';
  /** As written in completion, hover and docs. */
  signature: string;
  /** One line for completion, hover and the reference table of docs/language.md. */
  doc: string;
  /** The value of a component, undefined when the catalog lacks the figure. */
  value(c: ComponentInfo, s: StatisticSpec, tagOf: TagOf): number | undefined;
}

const perTag = (figure: (c: ComponentInfo, tag: string) => number | undefined) => (c: ComponentInfo, s: StatisticSpec, tagOf: TagOf) => {
  const tag = s.data === undefined ? undefined : tagOf(s.data);
  return tag === undefined ? undefined : figure(c, tag);
};

/** `own` over the mean of `others`, each a per-tag figure; undefined when any is unknown. */
function ratio(c: ComponentInfo, s: StatisticSpec, tagOf: TagOf, figure: (c: ComponentInfo, tag: string) => number | undefined): number | undefined {
  const at = (d: string) => {
    const t = tagOf(d);
    return t === undefined ? undefined : figure(c, t);
  };
  const own = s.data === undefined ? undefined : at(s.data);
  const others = (s.versus ?? []).map(at);
  if (own === undefined || others.some((v) => v === undefined) || others.length === 0) return undefined;
  const mean = (others as number[]).reduce((a, b) => a + b, 0) / others.length;
  return mean > 0 ? own / mean : own > 0 ? Infinity : 0;
}

export const STATISTICS = {
  norm: {
    args: 'none',
    signature: 'norm',
    doc: 'size of the rank-one piece, ‖U‖·‖V‖',
    value: (c) => c.norm,
  },
  selectivity: {
    args: 'versus',
    signature: 'selectivity(DATA[, OTHERS…])',
    doc: "mean |activation| on DATA over the mean on OTHERS (datasets or guards); without OTHERS, the catalog's selectivity for DATA's tag (over the other tags' mean)",
    value: (c, s, tagOf) => (s.versus ? ratio(c, s, tagOf, (x, t) => x.stats?.[t]?.meanAbs) : perTag((x, t) => x.selectivity?.[t])(c, s, tagOf)),
  },
  activation: {
    args: 'dataset',
    signature: 'activation(DATA)',
    doc: 'mean |activation| per token on DATA',
    value: perTag((c, t) => c.stats?.[t]?.meanAbs),
  },
  firing: {
    args: 'dataset',
    signature: 'firing(DATA)',
    doc: "fraction of DATA's tokens where the component is active",
    value: perTag((c, t) => c.stats?.[t]?.firingRate),
  },
  ablation: {
    args: 'versus',
    signature: 'ablation(DATA[, OTHERS…])',
    doc: 'Δloss on DATA when the component is removed (scale 0), in nats per token; with OTHERS, minus the mean Δloss on them: how much more removing it hurts DATA',
    value: (c, s, tagOf) => {
      const at = (d: string | undefined): number | undefined => {
        const t = d === undefined ? undefined : tagOf(d);
        return t === undefined ? undefined : c.ablation?.[t];
      };
      const own = at(s.data);
      if (own === undefined || !s.versus) return own;
      const others = s.versus.map(at);
      if (!others.length || others.some((v) => v === undefined)) return undefined;
      return own - (others as number[]).reduce((a, b) => a + b, 0) / others.length;
    },
  },
  alignment: {
    args: 'probe',
    signature: 'alignment(PROBE.DATA)',
    doc: "|cosine| of the probe's direction for DATA with the component's read vector (modules reading the probe's point) or write vector (modules writing it), the larger; from the figures `scalpel geometry --spec FILE --probe PROBE` writes",
    value: (c, s) => (s.probe && s.data !== undefined ? alignmentOf(s.probe, s.data, c.key) : undefined),
  },
} satisfies Record<string, StatisticDef>;

export type StatisticName = keyof typeof STATISTICS;

export const STATISTIC_NAMES = Object.keys(STATISTICS) as StatisticName[];

export function statisticDef(name: string): StatisticDef | undefined {
  return Object.hasOwn(STATISTICS, name) ? STATISTICS[name as StatisticName] : undefined;
}

/** The value a statistic gives a component, or undefined when the catalog lacks it. */
export function statistic(c: ComponentInfo | undefined, s: StatisticSpec, tagOf: TagOf): number | undefined {
  return c ? STATISTICS[s.kind].value(c, s, tagOf) : undefined;
}

/** Every statistic as written: `norm`, `selectivity(DATA[, OTHERS…])`, … */
export function statisticSignatures(): string[] {
  return Object.values(STATISTICS).map((d) => d.signature);
}

/**
 * The metrics of a dataset that expectations check (`expect EDIT: METRIC …`) and tuned scales search on,
 * one entry each: how it is written, what it means, what its bound is in and whether a scale can be tuned on
 * it. The parser, checker, the `expect` rule, completion, hover, semantic tokens, the grammar test and
 * docs/language.md's table all read this table, as they read statistics.ts for selector statistics.
 */

interface MetricDef {
  /** `dataset`: `f(DATA or GUARD)`; `probe`: `f(PROBE.DATA or PROBE.GUARD)`. */
  args: 'dataset' | 'probe';
  /** As written in completion, hover and docs. */
  signature: string;
  /** One line for completion, hover and the reference table of docs/language.md. */
  doc: string;
  /** `loss`: a bound in nats, bits or %; `fraction`: a bound from 0 to 1 with no unit. */
  bound: 'loss' | 'fraction';
  /** Whether `scale tune … METRIC` may search on it. */
  tunes: boolean;
}

export const METRICS = {
  loss: {
    args: 'dataset',
    signature: 'loss(DATA or GUARD)',
    doc: "mean next-token loss per token on DATA (on each of GUARD's datasets), before and after the edit; bounds in nats, bits or % of the loss before",
    bound: 'loss',
    tunes: true,
  },
  accuracy: {
    args: 'probe',
    signature: 'accuracy(PROBE.DATA or PROBE.GUARD)',
    doc: "the share of DATA's held-out tokens (of each of GUARD's datasets) that the probe's direction for DATA reads as DATA, the probe trained on the base model and scored on the base and the edited model's activations; a fraction from 0 to 1, no unit",
    bound: 'fraction',
    tunes: false,
  },
} satisfies Record<string, MetricDef>;

export type MetricName = keyof typeof METRICS;

export const METRIC_NAMES = Object.keys(METRICS) as MetricName[];

export function metricDef(name: string): MetricDef | undefined {
  return Object.hasOwn(METRICS, name) ? METRICS[name as MetricName] : undefined;
}

/** Every metric as written: `loss(DATA or GUARD)`, `accuracy(PROBE.DATA or PROBE.GUARD)`. */
export function metricSignatures(): string[] {
  return Object.values(METRICS).map((d) => d.signature);
}

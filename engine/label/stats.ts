/**
 * Per-component statistics and automatic labels from per-tag activation sums.
 * Pure arithmetic: no model, no I/O, so the label rules are testable on their own.
 */
import { ComponentInfo, ComponentLabel, TagStats } from '../catalog/types';

const LANGUAGE_NAMES: Record<string, string> = {
  de: 'German', fr: 'French', es: 'Spanish', it: 'Italian', en: 'English', nl: 'Dutch', pt: 'Portuguese',
  ru: 'Russian', pl: 'Polish', sv: 'Swedish', da: 'Danish', fi: 'Finnish', cs: 'Czech', ja: 'Japanese', zh: 'Chinese',
};

/** `de` → `German`; other tags as written. */
export function tagName(tag: string): string {
  return LANGUAGE_NAMES[tag] ?? tag;
}

/** A tag's mean over the mean of the other tags' means (Infinity when the others are all zero). */
export function selectivity(meanAbs: Record<string, number>): Record<string, number> {
  const tags = Object.keys(meanAbs);
  const out: Record<string, number> = {};
  for (const t of tags) {
    const others = tags.filter((o) => o !== t);
    const rest = others.length ? others.reduce((a, o) => a + meanAbs[o], 0) / others.length : 0;
    out[t] = rest > 0 ? meanAbs[t] / rest : meanAbs[t] > 0 ? Infinity : 1;
  }
  return out;
}

/** Thresholds of the label rules (docs/components.md, "Labels"). */
export const SINGLE_TAG_RATIO = 3;
export const GROUP_RATIO = 2;
/** Below this many firing tokens in every tag a component is `inactive`: ratios of near-zeros mean nothing. */
export const MIN_FIRING_TOKENS = 3;
/** Ablation must raise a tag's loss by at least this (nats per token), and more than the other tags' mean, to be the tag's. */
export const MIN_ABLATION_DELTA = 1e-3;

/** Whether ablating the component hurts `tag` (its Δloss per tag in `ablation`) more than the others on average. */
export function hurts(ablation: Record<string, number>, tag: string): boolean {
  const others = Object.keys(ablation).filter((t) => t !== tag);
  const rest = others.length ? others.reduce((a, t) => a + Math.max(0, ablation[t]), 0) / others.length : 0;
  return (ablation[tag] ?? 0) >= MIN_ABLATION_DELTA && ablation[tag] > rest;
}

/**
 * The automatic label: the tag set (one tag, or a group) whose weakest member's meanAbs is the
 * largest multiple of the rest's mean; `tokens` is the fewest tokens any tag had (for confidence and
 * the activity floor). With `ablation` (Δloss per tag when the component is removed) a tag is named
 * only where removing the component hurts it (`hurts`); where it fires but is not needed, the label
 * says `active on TAG, not causal`, so that a label regex for the language does not match it.
 */
export function autoLabel(stats: Record<string, TagStats>, tokens: number, ablation?: Record<string, number>): ComponentLabel {
  const label = activationLabel(stats, tokens);
  if (!ablation || !label.tags) return strip(label);
  if (label.tags.every((t) => hurts(ablation, t))) return strip(label);
  return { text: `active on ${label.tags.join('+')}, not causal (${label.why})`, source: 'auto', confidence: label.confidence };
}

const strip = ({ text, source, confidence }: ComponentLabel & { tags?: string[]; why?: string }): ComponentLabel => ({ text, source, confidence });

function activationLabel(stats: Record<string, TagStats>, tokens: number): ComponentLabel & { tags?: string[]; why?: string } {
  const tags = Object.keys(stats).sort((a, b) => stats[b].meanAbs - stats[a].meanAbs);
  const mean = (ts: string[]) => ts.reduce((a, t) => a + stats[t].meanAbs, 0) / ts.length;
  if (!tags.length || tags.every((t) => stats[t].firingRate * tokens < MIN_FIRING_TOKENS)) return { text: 'inactive', source: 'auto', confidence: round(Math.min(1, tokens / 500)) };
  let best = { k: 1, ratio: 0 };
  for (let k = 1; k < tags.length; k++) {
    const rest = mean(tags.slice(k));
    const ratio = rest > 0 ? stats[tags[k - 1]].meanAbs / rest : Infinity;
    if (ratio > best.ratio) best = { k, ratio };
  }
  const group = tags.slice(0, best.k);
  const rest = tags.slice(best.k);
  const shown = Number.isFinite(best.ratio) ? `${best.ratio.toFixed(1)}×` : 'only';
  // Surer with a larger ratio, more data, and a group that clearly fires (20 tokens or more) rather than hums.
  const firing = Math.min(...group.map((t) => stats[t].firingRate)) * tokens;
  const confidence = round((1 - 1 / Math.max(1, best.ratio)) * Math.min(1, tokens / 500) * Math.min(1, firing / 20));
  const why = `${shown} vs ${rest.join('/')}`;
  if (best.k === 1 && best.ratio >= SINGLE_TAG_RATIO) {
    return { text: `${tagName(group[0])} (${why})`, source: 'auto', confidence, tags: group, why };
  }
  if (best.k > 1 && best.ratio >= GROUP_RATIO) {
    const text = rest.length === 1 ? `non-${tagName(rest[0])} (${group.join(', ')})` : `${group.map(tagName).join('+')} (${why})`;
    return { text, source: 'auto', confidence, tags: group, why };
  }
  const top = selectivity(Object.fromEntries(tags.map((t) => [t, stats[t].meanAbs])));
  return { text: `unselective (max ${top[tags[0]].toFixed(1)}× ${tags[0]})`, source: 'auto', confidence: round(1 - 1 / Math.max(1, SINGLE_TAG_RATIO / Math.max(1, top[tags[0]]))) };
}

/** Four significant digits: statistics, not measurements to the last bit, and catalogs stay small. */
export function round(x: number): number {
  return Number.isFinite(x) ? Number(x.toPrecision(4)) : x;
}

/**
 * Components by selectivity for `tag`, most selective first, among those firing on at least
 * `minFiring` of the tag's tokens (a ratio of near-zeros says nothing).
 */
export function mostSelective(components: ComponentInfo[], tag: string, minFiring = 0.01): ComponentInfo[] {
  return components
    .filter((c) => c.selectivity?.[tag] !== undefined && (c.stats?.[tag]?.firingRate ?? 0) >= minFiring)
    .sort((a, b) => b.selectivity![tag] - a.selectivity![tag]);
}

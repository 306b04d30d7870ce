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

/**
 * The automatic label: the tag set (one tag, or a group) whose weakest member's meanAbs is the
 * largest multiple of the rest's mean; `tokens` is the fewest tokens any tag had (for confidence and
 * the activity floor).
 */
export function autoLabel(stats: Record<string, TagStats>, tokens: number): ComponentLabel {
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
  if (best.k === 1 && best.ratio >= SINGLE_TAG_RATIO) {
    return { text: `${tagName(group[0])} (${shown} vs ${rest.join('/')})`, source: 'auto', confidence };
  }
  if (best.k > 1 && best.ratio >= GROUP_RATIO) {
    const text = rest.length === 1 ? `non-${tagName(rest[0])} (${group.join(', ')})` : `${group.map(tagName).join('+')} (${shown} vs ${rest.join('/')})`;
    return { text, source: 'auto', confidence };
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

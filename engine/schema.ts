/**
 * Checking parsed JSON against a schema before anything uses it (catalog.json, safetensors headers):
 * a file from elsewhere may hold a string where a count belongs, or a count that would allocate
 * gigabytes. A schema is a function from a value to the first problem, located by its JSON path
 * (`modules[3].components must be a whole number from 1 to 16777216, not "12"`).
 */

/** The first problem with `value` (at `at`, a JSON path), or undefined when it conforms. */
export type Schema = (value: unknown, at: string) => string | undefined;

const shown = (v: unknown): string => {
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 40 ? `${s.slice(0, 37)}…` : s;
};

const where = (at: string) => at || 'the value';

export const string: Schema = (v, at) => (typeof v === 'string' ? undefined : `${where(at)} must be a string, not ${shown(v)}`);

export const boolean: Schema = (v, at) => (typeof v === 'boolean' ? undefined : `${where(at)} must be true or false, not ${shown(v)}`);

/** A finite number (no NaN or ±Infinity can come from JSON, but a huge exponent gives Infinity). */
export const number: Schema = (v, at) => (typeof v === 'number' && Number.isFinite(v) ? undefined : `${where(at)} must be a finite number, not ${shown(v)}`);

export function integer(min: number, max: number): Schema {
  return (v, at) => (Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? undefined : `${where(at)} must be a whole number from ${min} to ${max}, not ${shown(v)}`);
}

export function oneOf(...options: string[]): Schema {
  return (v, at) => (options.includes(v as string) ? undefined : `${where(at)} must be ${options.map((o) => JSON.stringify(o)).join(' or ')}, not ${shown(v)}`);
}

export function array(item: Schema, maxLength = Infinity): Schema {
  return (v, at) => {
    if (!Array.isArray(v)) return `${where(at)} must be a list, not ${shown(v)}`;
    if (v.length > maxLength) return `${where(at)} has ${v.length} entries (at most ${maxLength})`;
    for (let i = 0; i < v.length; i++) {
      const problem = item(v[i], `${at}[${i}]`);
      if (problem) return problem;
    }
    return undefined;
  };
}

/** A JSON object with the given fields (`optional` ones may be absent or null); other fields are allowed. */
export function object(required: Record<string, Schema>, optional: Record<string, Schema> = {}): Schema {
  return (v, at) => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) return `${where(at)} must be an object, not ${shown(v)}`;
    const o = v as Record<string, unknown>;
    const field = (k: string) => (at ? `${at}.${k}` : k);
    for (const [k, s] of Object.entries(required)) {
      if (!(k in o)) return `${where(at)} has no "${k}"`;
      const problem = s(o[k], field(k));
      if (problem) return problem;
    }
    for (const [k, s] of Object.entries(optional)) {
      if (o[k] === undefined || o[k] === null) continue;
      const problem = s(o[k], field(k));
      if (problem) return problem;
    }
    return undefined;
  };
}

/** An object whose every value conforms to `value` (e.g. per-tag statistics). */
export function record(value: Schema): Schema {
  return (v, at) => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) return `${where(at)} must be an object, not ${shown(v)}`;
    for (const [k, x] of Object.entries(v)) {
      const problem = value(x, at ? `${at}.${k}` : k);
      if (problem) return problem;
    }
    return undefined;
  };
}

/**
 * Checking parsed JSON against a schema before anything uses it (catalog.json, safetensors headers):
 * a file from elsewhere may hold a string where a count belongs, or a count that would allocate
 * gigabytes. A schema is a function from a value to the first problem, located by its JSON path
 * (`modules[3].components must be a whole number from 1 to 16777216, not "12"`).
 */

/**
 * The first problem with `value` (at `at`, a JSON path), or undefined when it conforms. `valid` answers the same
 * question without building paths or messages: a conforming 70,000-component catalog is checked by `valid` alone,
 * and the located message is built only for a value that fails it.
 */
export interface Schema {
  (value: unknown, at: string): string | undefined;
  valid(value: unknown): boolean;
}

/** A schema from its fast test and the message for a value that fails it. */
function schema(valid: (v: unknown) => boolean, problem: (v: unknown, at: string) => string | undefined): Schema {
  return Object.assign((v: unknown, at: string) => (valid(v) ? undefined : problem(v, at)), { valid });
}

const shown = (v: unknown): string => {
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 40 ? `${s.slice(0, 37)}…` : s;
};

const where = (at: string) => at || 'the value';

export const string = schema((v) => typeof v === 'string', (v, at) => `${where(at)} must be a string, not ${shown(v)}`);

export const boolean = schema((v) => typeof v === 'boolean', (v, at) => `${where(at)} must be true or false, not ${shown(v)}`);

/** A finite number (no NaN or ±Infinity can come from JSON, but a huge exponent gives Infinity). */
export const number = schema((v) => typeof v === 'number' && Number.isFinite(v), (v, at) => `${where(at)} must be a finite number, not ${shown(v)}`);

export function integer(min: number, max: number): Schema {
  return schema((v) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max, (v, at) => `${where(at)} must be a whole number from ${min} to ${max}, not ${shown(v)}`);
}

export function oneOf(...options: string[]): Schema {
  return schema((v) => options.includes(v as string), (v, at) => `${where(at)} must be ${options.map((o) => JSON.stringify(o)).join(' or ')}, not ${shown(v)}`);
}

export function array(item: Schema, maxLength = Infinity): Schema {
  return schema(
    (v) => {
      if (!Array.isArray(v) || v.length > maxLength) return false;
      for (let i = 0; i < v.length; i++) if (!item.valid(v[i])) return false;
      return true;
    },
    (v, at) => {
      if (!Array.isArray(v)) return `${where(at)} must be a list, not ${shown(v)}`;
      if (v.length > maxLength) return `${where(at)} has ${v.length} entries (at most ${maxLength})`;
      for (let i = 0; i < v.length; i++) {
        const problem = item(v[i], `${at}[${i}]`);
        if (problem) return problem;
      }
      return undefined;
    },
  );
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** A JSON object with the given fields (`optional` ones may be absent or null); other fields are allowed. */
export function object(required: Record<string, Schema>, optional: Record<string, Schema> = {}): Schema {
  const req = Object.entries(required);
  const opt = Object.entries(optional);
  return schema(
    (v) => {
      if (!isObject(v)) return false;
      for (const [k, s] of req) if (!(k in v) || !s.valid(v[k])) return false;
      for (const [k, s] of opt) if (v[k] !== undefined && v[k] !== null && !s.valid(v[k])) return false;
      return true;
    },
    (v, at) => {
      if (!isObject(v)) return `${where(at)} must be an object, not ${shown(v)}`;
      const field = (k: string) => (at ? `${at}.${k}` : k);
      for (const [k, s] of req) {
        if (!(k in v)) return `${where(at)} has no "${k}"`;
        const problem = s(v[k], field(k));
        if (problem) return problem;
      }
      for (const [k, s] of opt) {
        if (v[k] === undefined || v[k] === null) continue;
        const problem = s(v[k], field(k));
        if (problem) return problem;
      }
      return undefined;
    },
  );
}

/** An object whose every value conforms to `value` (e.g. per-tag statistics). */
export function record(value: Schema): Schema {
  return schema(
    (v) => {
      if (!isObject(v)) return false;
      for (const k in v) if (Object.prototype.hasOwnProperty.call(v, k) && !value.valid(v[k])) return false;
      return true;
    },
    (v, at) => {
      if (!isObject(v)) return `${where(at)} must be an object, not ${shown(v)}`;
      for (const [k, x] of Object.entries(v)) {
        const problem = value(x, at ? `${at}.${k}` : k);
        if (problem) return problem;
      }
      return undefined;
    },
  );
}

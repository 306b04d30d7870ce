/**
 * The expressions' names and functions (`loss(german)`, `logit("der")`, `component("h.2.mlp.c_fc:41")`):
 * one table, BUILTINS, that evaluation, the "unknown function" message and the docs test all read.
 * `base(x)` and `edited(x)` are not in it: they pick the side that evaluates their argument.
 */
import { parseComponentKey } from '../engine/catalog/key';
import { ScalpelError } from '../engine/errors';
import { TraceAnalysis } from '../engine/trace/analysis';
import { SIDES, Side } from '../engine/trace/trace';
import { ExpressionHost, Value, exprError } from './expression';
import type { Point } from './point';
import type { StopView } from './scopes';

/** Datasets for `loss(NAME)`: a spec's names, and the loss of a name or data source on both sides. */
export interface DatasetLosses {
  names: string[];
  loss(nameOrSource: string): Promise<Record<Side, number>>;
}

/** Where an expression is evaluated: the stop, the side, and what the session knows. */
export interface BuiltinContext {
  analysis: TraceAnalysis;
  view: StopView;
  point: Point;
  side: Side;
  position: number;
  target: number;
  datasets?: DatasetLosses;
}

interface Builtin {
  /** The numbers of arguments it takes. */
  arity: number[];
  run(args: Value[], ctx: BuiltinContext, start: number): Value | Promise<Value>;
}

const str = (v: Value | undefined, what: string, start: number): string => {
  if (typeof v !== 'string') throw exprError(`${what} takes a string`, start);
  return v;
};

/** `module:index` of a component the catalog has. */
function component(v: Value, what: string, a: TraceAnalysis, start: number): { module: string; index: number } {
  const key = str(v, what, start);
  const k = parseComponentKey(key);
  if (!k || !a.componentCount(k.module) || k.index >= a.componentCount(k.module)) throw exprError(`no component ${key} in the catalog`, start);
  return k;
}

function token(a: TraceAnalysis, text: string, start: number): number {
  try {
    return singleToken(a, text);
  } catch (err) {
    throw err instanceof ScalpelError ? exprError(err.message, start) : err;
  }
}

const lensValue = (name: 'logit' | 'prob'): Builtin => ({
  arity: [1],
  run: ([text], ctx, start) => {
    const t = token(ctx.analysis, str(text, `${name}()`, start), start);
    const logits = ctx.view.lensLogits(ctx.point, ctx.side);
    return name === 'logit' ? logits[t] : ctx.analysis.prob(logits, t);
  },
});

/** Every function of the expression language but `base` and `edited`, in the order error messages list them. */
export const BUILTINS: Record<string, Builtin> = {
  loss: {
    arity: [0, 1],
    run: async (args, ctx, start) => {
      if (args.length === 0) {
        const l = ctx.analysis.tokenLosses(ctx.side);
        if (!l.length) throw exprError('the input is one token: it has no next token to score', start);
        return l.reduce((x, y) => x + y, 0) / l.length;
      }
      if (!ctx.datasets) throw exprError('loss(DATASET) is not available in this session', start);
      return (await ctx.datasets.loss(str(args[0], 'loss()', start)))[ctx.side];
    },
  },
  logit: lensValue('logit'),
  prob: lensValue('prob'),
  component: {
    arity: [1],
    run: ([key], ctx, start) => {
      const c = component(key, 'component()', ctx.analysis, start);
      return ctx.analysis.activations(c.module, ctx.side, ctx.position)![c.index];
    },
  },
  gate: {
    arity: [1],
    run: ([v], ctx, start) => {
      const key = str(v, 'gate()', start);
      const g = ctx.analysis.gateValues(key);
      if (!g) throw exprError(`${key} is not gated in this edit`, start);
      return g[ctx.position];
    },
  },
  contribution: {
    arity: [1],
    run: ([key], ctx, start) => {
      const c = component(key, 'contribution()', ctx.analysis, start);
      const r = ctx.analysis.contributions(c.module, ctx.side, ctx.position, ctx.target);
      if (!r.values) throw exprError(`no linear path from ${c.module} to the logits`, start);
      return r.values[c.index];
    },
  },
  summary: { arity: [0], run: (_args, ctx) => ctx.view.summary(ctx.point) },
  abs: {
    arity: [1],
    run: ([x], _ctx, start) => {
      if (typeof x !== 'number') throw exprError('abs() takes a number', start);
      return Math.abs(x);
    },
  },
};

/** The expression host of one side at one stop: `position`, `true`/`false`, dataset names, and BUILTINS. */
export function expressionHost(ctx: BuiltinContext): ExpressionHost {
  return {
    side: (name) => (SIDES.includes(name as Side) ? expressionHost({ ...ctx, side: name as Side }) : undefined),
    name: (name, start) => {
      if (name === 'position') return ctx.position;
      if (name === 'true' || name === 'false') return name === 'true';
      if (ctx.datasets?.names.includes(name)) return name;
      const known = ctx.datasets?.names.length ? `datasets: ${ctx.datasets.names.join(', ')}` : 'no spec datasets; give a source, e.g. loss("udhr:deu")';
      throw exprError(`unknown name "${name}" (${known})`, start);
    },
    call: async (name, args, start) => {
      const fn = Object.hasOwn(BUILTINS, name) ? BUILTINS[name] : undefined;
      if (!fn) throw exprError(`unknown function ${name}() (known: ${[...Object.keys(BUILTINS), ...SIDES].join(', ')})`, start);
      if (!fn.arity.includes(args.length)) {
        const n = Math.max(...fn.arity);
        throw exprError(`${name}() takes ${n} argument${n === 1 ? '' : 's'}`, start);
      }
      return fn.run(args, ctx, start);
    },
  };
}

/** The id of a text that is exactly one token of the model's vocabulary. */
export function singleToken(a: TraceAnalysis, text: string): number {
  const ids = a.tracer.lm.tokenizer.encode(text);
  if (ids.length !== 1) throw new ScalpelError(`${JSON.stringify(text)} is ${ids.length} tokens; name a single token`);
  const vocab = a.trace.structure.unembed?.dOut ?? a.tracer.lm.tokenizer.vocabSize;
  if (!Number.isInteger(ids[0]) || ids[0] < 0 || ids[0] >= vocab) throw new ScalpelError(`${JSON.stringify(text)} is not a token of the model's vocabulary`);
  return ids[0];
}


/** A stop point of the debugger's listing (`runtime.ts` steps through them, `scopes.ts` shows them). */
export type PointKind = 'model' | 'block' | 'module' | 'component' | 'output';

export interface Point {
  /** Unique: `model`, `h.1`, `h.1.mlp.c_fc`, `h.1.mlp.c_fc:41`, `logits`. */
  key: string;
  kind: PointKind;
  depth: number;
  /** 1-based line of the listing. */
  line: number;
  block?: string;
  module?: string;
  component?: number;
}

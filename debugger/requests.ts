/**
 * Scalpel's own debug adapter requests beyond the protocol's, each declared once: its command, arguments
 * and response body. Plain types (no DAP import): the extension sends them with `DebugSession.customRequest`,
 * debugger/session.ts answers them.
 */

/** Where the debugger stands, in the terms the Geometry panel opens at (the extension's Show Geometry at This Stop). */
export const STOP_CONTEXT = 'scalpel/stopContext';

export interface StopContextArguments {
  /** A frame of the current stop (default: the top one, the stop itself). */
  frameId?: number;
}

export interface StopContext {
  /** The launch's spec, the edit debugged and its scale; all absent for a launch with a model instead of a spec. */
  spec?: string;
  edit?: string;
  scale?: number;
  /** The input's dataset (as the launch named it) and document, when it was `example` (`#worst` resolved). */
  example?: { dataset: string; document: number };
  /** The token debugged: its index in the input and its text. */
  position: number;
  token: string;
  /** The frame's stop point: `model`, `h.2`, `h.2.mlp.c_fc`, `h.2.mlp.c_fc:41`, `logits`. */
  point: string;
  /**
   * The capture point activation geometry reads there (engine/geometry/points.ts): `embed` at the model, `h.N.resid`
   * (the block's output) at a block, a module's output at the module and at its components, the last block's output
   * (what the final norm and the unembedding read) at the logits and at modules outside the blocks.
   */
  geometryPoint: string;
}

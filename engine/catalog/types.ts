/**
 * The component catalog: metadata about a model's decomposition into rank-one components.
 *
 * On disk a catalog is a folder with `catalog.json` (this metadata) and `components.safetensors`
 * (per module `<module>.V` (d_in, C) and `<module>.U` (C, d_out), the public SPD convention:
 * the module's torch-layout weight ≈ (V @ U).T; a factor that is the identity is not stored, see
 * `CatalogModule.identity`). Metadata queries (keys, labels, statistics) read
 * catalog.json only; tensor bytes are read lazily, per module. See docs/components.md.
 */

export const CATALOG_FORMAT = 'scalpel-catalog/1';

export type LabelSource = 'auto' | 'human' | 'imported';

export interface ComponentLabel {
  text: string;
  source: LabelSource;
  /** 0..1 where the source gives one. */
  confidence?: number;
}

/** Per-tag (e.g. per-language) activation statistics of one component. */
export interface TagStats {
  /** Mean |activation| per token (activation = x · V[:, c], weighted by ‖U[c]‖, or CI). */
  meanAbs: number;
  /** Fraction of tokens where the component is active (|activation| above the catalog's threshold, or CI > 0.5). */
  firingRate: number;
}

export interface ComponentContext {
  tag: string;
  /** A few tokens either side, with the active token marked by `⟦…⟧`. */
  text: string;
  activation: number;
}

export interface ComponentInfo {
  /** `<module>:<index>`, e.g. `h.2.mlp.c_fc:41`. */
  key: string;
  module: string;
  index: number;
  /** The label shown: human > imported > auto (the labeller never replaces human or imported ones). */
  label?: ComponentLabel;
  /** The labeller's latest automatic label, kept even where a human or imported label wins. */
  autoLabel?: ComponentLabel;
  /** Statistics per tag (e.g. `de`, `fr`, ...). */
  stats?: Record<string, TagStats>;
  /** Per tag: its meanAbs over the mean of the other tags' meanAbs. */
  selectivity?: Record<string, number>;
  /** Top-activating contexts. */
  contexts?: ComponentContext[];
  /** Output side: next tokens its write vector promotes most through the unembedding. */
  promotes?: { token: string; logit: number }[];
  /** Output side: next tokens its write vector suppresses most (most negative logits). */
  suppresses?: { token: string; logit: number }[];
  /** How the write vector reaches the logits, e.g. `lm_head` or `h.1.mlp.c_proj+lm_head` (see docs/components.md). */
  promotesVia?: string;
  /** ‖U[c]‖ · ‖V[:, c]‖: the size of the rank-one piece. */
  norm?: number;
  /**
   * Output side, per tag: Δloss (nats per token) when the component is ablated (scale 0), on the first
   * `ablationTokens` tokens of the tag's dataset. What its label's tag claims is checked against it.
   */
  ablation?: Record<string, number>;
}

export interface CatalogModule {
  /** Module path, e.g. `h.2.mlp.c_fc`. */
  path: string;
  /** The ONNX initializer holding the weight, and its layout there. */
  initializer: string;
  layout: 'in_out' | 'out_in';
  dIn: number;
  dOut: number;
  /** Number of components C. */
  components: number;
  /** Whether the tensors file holds `<module>.residual` (W − (V@U).T, torch layout). */
  hasResidual?: boolean;
  /** Where a writer dropped components: the index column c had in the source run. */
  sourceIndices?: number[];
  /**
   * The factor that is the identity and so is not stored (the neuron basis): `U` means U[c, :] = e_c
   * (C = dOut, component c is output unit c), `V` means V[:, c] = e_c (C = dIn, input unit c).
   */
  identity?: 'V' | 'U';
}

export interface CatalogMethod {
  /** `spd`, `neuron`, `svd`, `imported-spd`, ... */
  name: string;
  params?: Record<string, unknown>;
  /** Free text: tool, run id, commit. */
  provenance?: string;
}

export interface CatalogDatasetRef {
  name: string;
  source: string;
  sha256: string;
  tokens: number;
  /** The tag its statistics are filed under (e.g. `de`). */
  tag?: string;
  /** Which part of the source was used, e.g. `train part of splitDocuments(0.5, seed 0)`. */
  split?: string;
}

export interface Catalog {
  format: typeof CATALOG_FORMAT;
  model: { file: string; sha256: string };
  method: CatalogMethod;
  /** Relative path of the safetensors file. */
  tensors: string;
  modules: CatalogModule[];
  components: ComponentInfo[];
  /** Datasets the statistics were computed from. */
  datasets?: CatalogDatasetRef[];
  /** Activation threshold used for firingRate. */
  firingThreshold?: number;
  /** Scored tokens per tag that each component's `ablation` was measured on. */
  ablationTokens?: number;
  /** What `stats` measure: `activation` (|x·V[:, c]|·‖U[c]‖) or `ci` (the catalog's causal importance). */
  statsMeasure?: 'activation' | 'ci';
  created?: string;
}

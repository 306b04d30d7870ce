/** JSON forms of engine results (what `--json` prints and what front ends exchange). */
import { DatasetLoss, TokenizedDataset } from './evaluate';
import { TextTokenizer } from './tokenizer';

export interface DatasetLossJson {
  name: string;
  source: string;
  /** Tokens scored. */
  tokens: number;
  /** Mean next-token loss, nats per token. */
  loss: number;
  /** With per-token detail: each scored token's text and loss, in order. */
  perToken?: { token: string; loss: number }[];
}

export function datasetLossJson(r: DatasetLoss, detail?: { data: TokenizedDataset; tokenizer: TextTokenizer }): DatasetLossJson {
  const out: DatasetLossJson = { name: r.name, source: r.source, tokens: r.tokens, loss: r.loss };
  if (detail) {
    out.perToken = Array.from(r.perToken, (loss, i) => ({ token: detail.tokenizer.tokenText(detail.data.ids[i + 1]), loss }));
  }
  return out;
}

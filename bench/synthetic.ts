/**
 * A GPT-2-small-sized ONNX file (≈124M float32 parameters, random weights) streamed to disk
 * without holding it in memory: for write benchmarks, not for inference.
 */
import * as fs from 'node:fs';
import { DataType } from '../engine/onnx/model';
import { Writer, fieldHeader } from '../engine/onnx/wire';
import { encodeNode, encodeValueInfo } from '../engine/onnx/build';
import { GraphProto, ModelProto, OperatorSetIdProto, TensorProto } from '../engine/onnx/schema';

export function gpt2SmallShapes(): [string, number[]][] {
  const d = 768;
  const shapes: [string, number[]][] = [['wte.weight', [50257, d]], ['wpe.weight', [1024, d]]];
  for (let l = 0; l < 12; l++) {
    const p = `h.${l}`;
    shapes.push(
      [`${p}.ln_1.weight`, [d]], [`${p}.ln_1.bias`, [d]],
      [`${p}.attn.c_attn.weight`, [d, 3 * d]], [`${p}.attn.c_attn.bias`, [3 * d]],
      [`${p}.attn.c_proj.weight`, [d, d]], [`${p}.attn.c_proj.bias`, [d]],
      [`${p}.ln_2.weight`, [d]], [`${p}.ln_2.bias`, [d]],
      [`${p}.mlp.c_fc.weight`, [d, 4 * d]], [`${p}.mlp.c_fc.bias`, [4 * d]],
      [`${p}.mlp.c_proj.weight`, [4 * d, d]], [`${p}.mlp.c_proj.bias`, [d]],
    );
  }
  shapes.push(['ln_f.weight', [d]], ['ln_f.bias', [d]]);
  return shapes;
}

function tensorHeader(name: string, dims: number[], payload: number): Buffer {
  const head = new Writer().packedInts(TensorProto.dims, dims).varintField(TensorProto.dataType, DataType.FLOAT).stringField(TensorProto.name, name).finish();
  return Buffer.concat([head, fieldHeader(TensorProto.rawData, payload)]);
}

/** Writes the model; returns its parameter count. */
export function writeGpt2Small(file: string): number {
  const shapes = gpt2SmallShapes();
  const node = encodeNode({ name: 'Identity', opType: 'Identity', inputs: ['x'], outputs: ['y'] }).finish();
  const io = [
    Buffer.concat([fieldHeader(GraphProto.node, node.length), node]),
    ...[['x', GraphProto.input], ['y', GraphProto.output]].map(([n, f]) => {
      const v = encodeValueInfo({ name: n as string, elemType: DataType.FLOAT, shape: [1] }).finish();
      return Buffer.concat([fieldHeader(f as number, v.length), v]);
    }),
  ];
  let graphLength = io.reduce((a, b) => a + b.length, 0);
  const headers = shapes.map(([name, dims]) => {
    const n = dims.reduce((a, b) => a * b, 1) * 4;
    const h = tensorHeader(name, dims, n);
    const framing = fieldHeader(GraphProto.initializer, h.length + n);
    graphLength += framing.length + h.length + n;
    return { framing, h, n };
  });
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, new Writer().varintField(ModelProto.irVersion, 8).finish());
    fs.writeSync(fd, fieldHeader(ModelProto.graph, graphLength));
    for (const b of io) fs.writeSync(fd, b);
    let seed = 12345;
    const chunk = new Float32Array(1 << 20);
    for (const { framing, h, n } of headers) {
      fs.writeSync(fd, framing);
      fs.writeSync(fd, h);
      for (let left = n / 4; left > 0; left -= chunk.length) {
        const m = Math.min(left, chunk.length);
        for (let i = 0; i < m; i++) {
          seed = (seed * 1664525 + 1013904223) >>> 0;
          chunk[i] = (seed / 2 ** 32 - 0.5) * 0.04;
        }
        fs.writeSync(fd, new Uint8Array(chunk.buffer, 0, m * 4));
      }
    }
    fs.writeSync(fd, new Writer().messageField(ModelProto.opsetImport, new Writer().stringField(OperatorSetIdProto.domain, '').varintField(OperatorSetIdProto.version, 17)).finish());
  } finally {
    fs.closeSync(fd);
  }
  return shapes.reduce((a, [, dims]) => a + dims.reduce((x, y) => x * y, 1), 0);
}

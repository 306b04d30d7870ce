/**
 * Child process of bench/engine.ts: peak memory of writing an edited copy. Prints JSON with
 * peak RSS (KiB, bench/memory.ts) at three points: baseline (modules loaded), after allocating the changed tensor,
 * and after the write. The write itself should add no more than a few MiB of buffers.
 */
import { openModel, readFloatTensor } from '../engine/onnx/model';
import { writeEditedModel } from '../engine/onnx/write';
import { peakRssKiB } from './memory';

const [source, out, tensor] = process.argv.slice(2);
const kib = peakRssKiB;
const baseline = kib();
const m = openModel(source);
const values = readFloatTensor(m, tensor); // the one copy of the changed tensor
m.close();
for (let i = 0; i < values.length; i += 97) values[i] *= -1;
const afterTensor = kib();
writeEditedModel(source, out, new Map([[tensor, values]]));
const afterWrite = kib();
process.stdout.write(JSON.stringify({ baseline, afterTensor, afterWrite, tensorKiB: values.byteLength / 1024 }) + '\n');

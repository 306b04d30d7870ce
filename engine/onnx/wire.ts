/**
 * Protocol-buffer wire format, just enough for ONNX: a reader that walks fields by absolute
 * byte offset (so tensor payloads are located, never decoded) and a writer for small messages.
 *
 * The reader works on a ByteSource so that a multi-gigabyte model can be indexed through
 * positional reads of a read-only file descriptor without loading its weights.
 */
import * as fs from 'node:fs';
import { ScalpelError } from '../errors';

export const enum WireType {
  Varint = 0,
  Fixed64 = 1,
  Bytes = 2,
  Fixed32 = 5,
}

export interface ByteSource {
  readonly size: number;
  /** Bytes [offset, offset + length); throws ScalpelError past the end. */
  read(offset: number, length: number): Buffer;
  /** One byte, without allocating (varints are read byte by byte). */
  byte(offset: number): number;
}

export class BufferSource implements ByteSource {
  constructor(readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.length;
  }
  read(offset: number, length: number): Buffer {
    if (offset + length > this.bytes.length) throw new ScalpelError('unexpected end of data');
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + offset, length);
  }
  byte(offset: number): number {
    if (offset >= this.bytes.length) throw new ScalpelError('unexpected end of data');
    return this.bytes[offset];
  }
}

/** Positional reads through a 64 KiB window; the descriptor is opened read-only by the caller. */
export class FileSource implements ByteSource {
  private window = Buffer.alloc(0);
  private windowStart = 0;
  private static readonly WINDOW = 1 << 16;

  constructor(
    private readonly fd: number,
    readonly size: number,
  ) {}

  byte(offset: number): number {
    const i = offset - this.windowStart;
    if (i >= 0 && i < this.window.length) return this.window[i];
    return this.read(offset, 1)[0];
  }

  read(offset: number, length: number): Buffer {
    if (offset + length > this.size) throw new ScalpelError('unexpected end of file');
    if (offset >= this.windowStart && offset + length <= this.windowStart + this.window.length) {
      return this.window.subarray(offset - this.windowStart, offset - this.windowStart + length);
    }
    if (length > FileSource.WINDOW) {
      const out = Buffer.allocUnsafe(length);
      fs.readSync(this.fd, out, 0, length, offset);
      return out;
    }
    const n = Math.min(FileSource.WINDOW, this.size - offset);
    const buf = Buffer.allocUnsafe(n);
    fs.readSync(this.fd, buf, 0, n, offset);
    this.window = buf;
    this.windowStart = offset;
    return buf.subarray(0, length);
  }
}

export interface Field {
  number: number;
  wireType: WireType;
  /** Offset of the field's tag. */
  start: number;
  /** For Bytes: offset of the payload; otherwise offset of the value. */
  valueStart: number;
  /** End of the field (exclusive). */
  end: number;
  /** Varint value (as a number; ONNX ints fit) or fixed value bits; 0 for Bytes. */
  value: number;
}

export class WireError extends ScalpelError {}

/** Iterates the fields of the message occupying [start, end) of the source. */
export function* fields(src: ByteSource, start: number, end: number): Generator<Field> {
  let pos = start;
  while (pos < end) {
    const fieldStart = pos;
    const [tag, afterTag] = readVarint(src, pos, end);
    pos = afterTag;
    const wireType = (tag & 7) as WireType;
    const number = Math.floor(tag / 8);
    if (number === 0) throw new WireError('invalid field number 0', undefined, { offset: fieldStart });
    let value = 0;
    let valueStart = pos;
    switch (wireType) {
      case WireType.Varint: {
        [value, pos] = readVarint(src, pos, end);
        break;
      }
      case WireType.Fixed64:
        pos += 8;
        break;
      case WireType.Fixed32:
        value = src.read(pos, 4).readUInt32LE(0);
        pos += 4;
        break;
      case WireType.Bytes: {
        const [length, afterLength] = readVarint(src, pos, end);
        valueStart = afterLength;
        pos = afterLength + length;
        break;
      }
      default:
        throw new WireError(`unsupported wire type ${wireType}`, undefined, { offset: fieldStart });
    }
    if (pos > end) throw new WireError('field runs past the end of its message (truncated file?)', undefined, { offset: fieldStart });
    yield { number, wireType, start: fieldStart, valueStart, end: pos, value };
  }
}

export function readVarint(src: ByteSource, pos: number, end: number): [number, number] {
  let result = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new WireError('varint runs past the end (truncated file?)', undefined, { offset: pos });
    const b = src.byte(pos);
    pos++;
    result += (b & 0x7f) * scale;
    if (b < 0x80) return [result, pos];
    scale *= 128;
  }
  throw new WireError('malformed varint', undefined, { offset: pos });
}

export function fieldString(src: ByteSource, f: Field): string {
  return src.read(f.valueStart, f.end - f.valueStart).toString('utf8');
}

/** Repeated int64 (dims, ints): packed or one field per value. Negative varints come back as numbers. */
export function fieldInts(src: ByteSource, f: Field): number[] {
  if (f.wireType === WireType.Varint) return [toSigned(f.value)];
  const out: number[] = [];
  let pos = f.valueStart;
  while (pos < f.end) {
    const [v, next] = readVarint(src, pos, f.end);
    out.push(toSigned(v));
    pos = next;
  }
  return out;
}

function toSigned(v: number): number {
  // int64 -1 is encoded as 2^64 - 1, which a double rounds to 2^64.
  return v >= 2 ** 63 ? v - 2 ** 64 : v;
}

/** Builds a message field by field. */
export class Writer {
  private parts: Buffer[] = [];
  private length = 0;

  private push(b: Buffer): this {
    this.parts.push(b);
    this.length += b.length;
    return this;
  }

  varintField(number: number, value: number): this {
    return this.push(Buffer.concat([encodeVarint(number * 8 + WireType.Varint), encodeVarint(value)]));
  }

  bytesField(number: number, payload: Uint8Array): this {
    return this.push(Buffer.concat([encodeVarint(number * 8 + WireType.Bytes), encodeVarint(payload.length), payload]));
  }

  stringField(number: number, s: string): this {
    return this.bytesField(number, Buffer.from(s, 'utf8'));
  }

  messageField(number: number, w: Writer): this {
    return this.bytesField(number, w.finish());
  }

  packedInts(number: number, values: number[]): this {
    return this.bytesField(number, Buffer.concat(values.map(encodeVarint)));
  }

  float32Field(number: number, value: number): this {
    const b = Buffer.alloc(4);
    b.writeFloatLE(value, 0);
    return this.push(Buffer.concat([encodeVarint(number * 8 + WireType.Fixed32), b]));
  }

  raw(b: Buffer): this {
    return this.push(b);
  }

  finish(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

export function encodeVarint(value: number): Buffer {
  if (value < 0) {
    // Negative int64: ten bytes of two's complement, computed exactly with BigInt.
    let v = BigInt.asUintN(64, BigInt(value));
    const out: number[] = [];
    while (v >= 128n) {
      out.push(Number(v % 128n) | 0x80);
      v /= 128n;
    }
    out.push(Number(v));
    return Buffer.from(out);
  }
  const bytes: number[] = [];
  while (value >= 128) {
    bytes.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

export function fieldHeader(number: number, payloadLength: number): Buffer {
  return Buffer.concat([encodeVarint(number * 8 + WireType.Bytes), encodeVarint(payloadLength)]);
}

/**
 * A minimal JSON-RPC client with LSP's Content-Length framing, written out here so that the tests
 * and the benchmark exercise the server's real wire format, not a shared library's view of it.
 */
import { Readable, Writable } from 'node:stream';

type Handler = (params: any) => void;

export class RpcClient {
  private nextId = 1;
  private buffer = Buffer.alloc(0);
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Map<string, Set<Handler>>();

  constructor(input: Readable, private readonly output: Writable) {
    input.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  request<T = any>(method: string, params: unknown): Promise<T> {
    const id = this.nextId++;
    this.send({ jsonrpc: '2.0', id, method, params });
    return new Promise<T>((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  notify(method: string, params: unknown): void {
    this.send({ jsonrpc: '2.0', method, params });
  }

  on(method: string, handler: Handler): () => void {
    if (!this.listeners.has(method)) this.listeners.set(method, new Set());
    this.listeners.get(method)!.add(handler);
    return () => this.listeners.get(method)!.delete(handler);
  }

  /** The next notification `method` whose params satisfy `accept`. */
  waitFor<T = any>(method: string, accept: (params: T) => boolean = () => true, timeoutMs = 10000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`timed out waiting for ${method}`));
      }, timeoutMs);
      const off = this.on(method, (p) => {
        if (!accept(p)) return;
        clearTimeout(timer);
        off();
        resolve(p);
      });
    });
  }

  private send(msg: unknown): void {
    const body = Buffer.from(JSON.stringify(msg), 'utf8');
    this.output.write(`Content-Length: ${body.length}\r\n\r\n`);
    this.output.write(body);
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const headerEnd = this.buffer.indexOf('\r\n\r\n');
      if (headerEnd < 0) return;
      const m = /Content-Length: (\d+)/i.exec(this.buffer.subarray(0, headerEnd).toString('ascii'));
      if (!m) throw new Error('a message without Content-Length');
      const len = Number(m[1]);
      if (this.buffer.length < headerEnd + 4 + len) return;
      const msg = JSON.parse(this.buffer.subarray(headerEnd + 4, headerEnd + 4 + len).toString('utf8'));
      this.buffer = this.buffer.subarray(headerEnd + 4 + len);
      this.dispatch(msg);
    }
  }

  private dispatch(msg: any): void {
    if (msg.id !== undefined && msg.method === undefined) {
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error) p?.reject(Object.assign(new Error(msg.error.message), { code: msg.error.code }));
      else p?.resolve(msg.result);
    } else if (msg.id !== undefined) {
      // A request from the server (registerCapability, configuration): accept it.
      this.send({ jsonrpc: '2.0', id: msg.id, result: null });
    } else {
      for (const h of this.listeners.get(msg.method) ?? []) h(msg.params);
    }
  }
}

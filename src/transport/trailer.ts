// A byte stream carried as `data` parts closed by a `trailer` part {sizeBytes, sha256}: the receiving
// side recomputes both while streaming, and the stream it hands on ends cleanly only if they match.

import { createHash } from 'node:crypto';
import { StreamError, type StreamRejectCode } from './errors.js';
import { Invalid, bytes, describe, oneofMember, rec, reqRec, toHex, u64 } from './wire.js';

export interface TrailerVerifierOptions {
  /** Members the oneof `part` may hold; only `data` and `trailer` are accepted after the start. */
  readonly parts: readonly string[];
  readonly maxChunkBytes: number;
  /** What the stream is, for error texts ("snapshot save from 127.0.0.1:8300"). */
  readonly what: string;
  /** Turns an error thrown by the underlying iterator into a message. */
  readonly describeBreak?: (err: unknown) => string;
  /** grpc-js ends a cancelled server call's stream like a finished one; this tells the two apart. */
  readonly cancelled?: () => boolean;
}

export class TrailerVerifier {
  received = 0;
  complete = false;
  failure: StreamError | undefined;
  readonly failed: Promise<StreamError>;
  private signal!: (e: StreamError) => void;

  constructor(
    private readonly it: AsyncIterator<unknown>,
    private readonly o: TrailerVerifierOptions,
  ) {
    this.failed = new Promise((resolve) => (this.signal = resolve));
  }

  private fail(code: StreamRejectCode, message: string, cause?: unknown): never {
    throw this.record(code, message, cause);
  }

  private record(code: StreamRejectCode, message: string, cause?: unknown): StreamError {
    const err = new StreamError(code, `${this.o.what}: ${message}`, { cause });
    if (this.failure === undefined) {
      this.failure = err;
      this.signal(err);
    }
    return err;
  }

  /** Fails the stream from outside (the call was cancelled); undefined if it already ended. */
  abort(code: StreamRejectCode, message: string): StreamError | undefined {
    return this.complete || this.failure !== undefined ? undefined : this.record(code, message);
  }

  async *bytes(): AsyncGenerator<Buffer> {
    const hash = createHash('sha256');
    for (let n = 1; ; n++) {
      let r: IteratorResult<unknown>;
      try {
        r = await this.it.next();
      } catch (err) {
        const why = this.o.describeBreak?.(err) ?? (err as Error)?.message ?? describe(err);
        this.fail('STREAM_BROKEN', `the stream broke after ${this.received} bytes: ${why}`, err);
      }
      if (r.done === true) {
        if (this.o.cancelled?.() === true) {
          this.fail('STREAM_BROKEN', `the sender cancelled the stream (or its deadline passed) after ${this.received} bytes`);
        }
        this.fail('STREAM_TRUNCATED', `the stream ended after ${this.received} bytes without its trailer`);
      }
      let part: string;
      let o: Record<string, unknown>;
      try {
        o = rec(r.value, `part[${n}]`);
        part = oneofMember(o, 'part', `part[${n}]`, this.o.parts);
      } catch (err) {
        if (err instanceof Invalid) this.fail('STREAM_BAD_PART', `malformed part: ${err.message}`);
        throw err;
      }
      if (part === 'data') {
        const data = this.decode(() => bytes(o, 'data', `part[${n}]`));
        if (data.byteLength > this.o.maxChunkBytes) {
          this.fail('STREAM_CHUNK_TOO_LARGE', `chunk ${n} is ${data.byteLength} bytes; the limit is ${this.o.maxChunkBytes}`);
        }
        hash.update(data);
        this.received += data.byteLength;
        yield Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        continue;
      }
      if (part !== 'trailer') this.fail('STREAM_BAD_PART', `unexpected ${part} part after the data started`);
      const { size, sha } = this.decode(() => {
        const t = reqRec(o, 'trailer', `part[${n}]`);
        const sha256 = bytes(t, 'sha256', `part[${n}].trailer`);
        if (sha256.byteLength !== 32) throw new Invalid(`part[${n}].trailer.sha256`, `is ${sha256.byteLength} bytes; a SHA-256 is 32`);
        return { size: u64(t, 'sizeBytes', `part[${n}].trailer`), sha: toHex(sha256) };
      });
      if (size !== this.received) {
        this.fail('STREAM_SIZE_MISMATCH', `received ${this.received} bytes but the trailer says ${size}`);
      }
      const actual = hash.digest('hex');
      if (actual !== sha) this.fail('STREAM_CHECKSUM_MISMATCH', `the ${size} bytes received have SHA-256 ${actual}; the trailer says ${sha}`);
      let extra: IteratorResult<unknown>;
      try {
        extra = await this.it.next();
      } catch (err) {
        this.fail('STREAM_BROKEN', `the stream broke after its trailer: ${(err as Error)?.message ?? describe(err)}`, err);
      }
      if (extra.done !== true) this.fail('STREAM_BAD_PART', 'a part followed the trailer');
      this.complete = true;
      return;
    }
  }

  private decode<T>(f: () => T): T {
    try {
      return f();
    } catch (err) {
      if (err instanceof Invalid) this.fail('STREAM_BAD_PART', `malformed part: ${err.message}`);
      throw err;
    }
  }
}

/** Running size and SHA-256 of what a sender streamed, for its trailer. */
export class TrailerBuilder {
  private readonly hash = createHash('sha256');
  sizeBytes = 0;

  add(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.sizeBytes += chunk.byteLength;
  }

  trailer(): { sizeBytes: number; sha256: Buffer } {
    return { sizeBytes: this.sizeBytes, sha256: this.hash.digest() };
  }
}

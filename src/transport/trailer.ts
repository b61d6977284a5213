// A byte stream carried as `data` parts closed by a `trailer` part {sizeBytes, sha256}: the receiving
// side recomputes both while streaming, and the stream it hands on ends cleanly only if they match.

import { createHash } from 'node:crypto';
import { StreamError, type StreamRejectCode } from './errors.js';
import { HashedStreamVerifier } from './verifier.js';
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

export class TrailerVerifier extends HashedStreamVerifier<StreamRejectCode, StreamError> {
  constructor(
    it: AsyncIterator<unknown>,
    private readonly o: TrailerVerifierOptions,
  ) {
    super(it);
  }

  protected error(code: StreamRejectCode, message: string, cause?: unknown): StreamError {
    return new StreamError(code, `${this.o.what}: ${message}`, { cause });
  }

  async *bytes(): AsyncGenerator<Buffer> {
    for (let n = 1; ; n++) {
      const r = await this.next((err) => [
        'STREAM_BROKEN',
        `the stream broke after ${this.received} bytes: ${this.o.describeBreak?.(err) ?? (err as Error)?.message ?? describe(err)}`,
      ]);
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
        this.checkChunk(data, n, this.o.maxChunkBytes, 'STREAM_CHUNK_TOO_LARGE');
        this.count(data);
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
      const actual = this.sha256Hex();
      if (actual !== sha) this.fail('STREAM_CHECKSUM_MISMATCH', `the ${size} bytes received have SHA-256 ${actual}; the trailer says ${sha}`);
      const extra = await this.next((err) => ['STREAM_BROKEN', `the stream broke after its trailer: ${(err as Error)?.message ?? describe(err)}`]);
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

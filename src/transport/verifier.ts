// What the two receivers of a chunked byte stream share: they hand the bytes on while counting and
// hashing them, and fail the stream they hand on (once, with a typed error) when a check fails, the
// call breaks or it is cancelled. InstallSnapshot (snapshot.ts) learns the size and SHA-256 from its
// header; the ServerRpc save and restore bodies (trailer.ts) from a trailer part after the data.

import { createHash } from 'node:crypto';

export abstract class HashedStreamVerifier<Code extends string, Failure extends Error> {
  /** Data bytes received so far. */
  received = 0;
  /** True once every byte arrived and verified. */
  complete = false;
  /** The first failure, once there is one. */
  failure: Failure | undefined;
  /** Resolves with the first failure. */
  readonly failed: Promise<Failure>;
  private signal!: (f: Failure) => void;
  private readonly hash = createHash('sha256');

  constructor(protected readonly it: AsyncIterator<unknown>) {
    this.failed = new Promise<Failure>((resolve) => (this.signal = resolve));
  }

  /** The error a failure with `code` fails the stream with. */
  protected abstract error(code: Code, message: string, cause?: unknown): Failure;

  /** Fails the stream from outside (the call was cancelled); undefined if it already ended. */
  abort(code: Code, message: string): Failure | undefined {
    return this.complete || this.failure !== undefined ? undefined : this.record(code, message);
  }

  protected fail(code: Code, message: string, cause?: unknown): never {
    throw this.record(code, message, cause);
  }

  private record(code: Code, message: string, cause?: unknown): Failure {
    const err = this.error(code, message, cause);
    if (this.failure === undefined) {
      this.failure = err;
      this.signal(err);
    }
    return err;
  }

  /** The next message of the call; a call that breaks fails the stream as `broken` says. */
  protected async next(broken: (err: unknown) => readonly [Code, string]): Promise<IteratorResult<unknown>> {
    try {
      return await this.it.next();
    } catch (err) {
      const [code, message] = broken(err);
      this.fail(code, message, err);
    }
  }

  /** Fails the stream with `code` when data chunk `n` is over `maxChunkBytes`. */
  protected checkChunk(data: Uint8Array, n: number, maxChunkBytes: number, code: Code): void {
    if (data.byteLength > maxChunkBytes) this.fail(code, `chunk ${n} is ${data.byteLength} bytes; the limit is ${maxChunkBytes}`);
  }

  /** Counts and hashes a chunk about to be handed on. */
  protected count(data: Uint8Array): void {
    this.hash.update(data);
    this.received += data.byteLength;
  }

  /** SHA-256 of everything counted, in lower-case hex. Call once, at the end. */
  protected sha256Hex(): string {
    return this.hash.digest('hex');
  }
}

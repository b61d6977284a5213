// InstallSnapshot over a real gRPC client stream: large snapshots stream in bounded chunks with
// bounded memory, corrupt or short streams are refused with clear errors on the sender, nothing
// unverified reaches the core, and heartbeats keep flowing while a snapshot is in transfer.
//
// Serial: the memory measurement must not share the process with other transfers.

import { spawn } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import type { Message, SnapshotMessage } from '../../src/raft/index.js';
import { MiB } from '../../src/base/index.js';
import { PeerTransport, TransportError, raftPeerService, snapshotDeadlineMs } from '../../src/transport/index.js';
import { pseudoRandomBytes, pseudoRandomSha256, sampleMessages, startPair, waitFor } from '../../src/transport/testing.js';

const snapshotMessage = sampleMessages('a', 'b').find((m): m is SnapshotMessage => m.type === 'snapshot')!;

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) void _;
}

// The receiver runs in its own process so that its memory is measured alone: it hashes what it
// receives, samples heap + ArrayBuffer bytes after a forced GC every MiB, and reports the peak growth.
const transportEntry = new URL('../../src/transport/index.ts', import.meta.url).href;
const packageRoot = fileURLToPath(new URL('../../', import.meta.url));
const receiverProcess = `
import { createHash } from 'node:crypto';
const { PeerTransport } = await import(${JSON.stringify(transportEntry)});
const t = new PeerTransport({ id: 'b' });
const port = await t.listen('127.0.0.1', 0);
const usage = () => { globalThis.gc(); const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };
let peakGrowth = 0, received = 0, pieces = 0, largestPiece = 0, next = 0, sha256 = '', delivered = [];
t.onMessage((m) => delivered.push(m.type));
t.onSnapshot(async (header, stream) => {
  const hash = createHash('sha256');
  for await (const c of stream) {
    hash.update(c);
    received += c.length;
    pieces++;
    largestPiece = Math.max(largestPiece, c.length);
    if (received >= next) {
      next += 1024 * 1024;
      peakGrowth = Math.max(peakGrowth, usage() - base);
      // A little slower than the network, and one long stall: whatever the transport reads ahead of
      // the handler piles up now and is counted by the next samples.
      await new Promise((r) => setTimeout(r, received >= 5 * 1024 * 1024 && received < 6 * 1024 * 1024 ? 300 : 2));
      if (received < 6 * 1024 * 1024) peakGrowth = Math.max(peakGrowth, usage() - base);
    }
  }
  sha256 = hash.digest('hex');
});
const base = usage();
process.send({ port });
process.on('message', async () => {
  process.send({ peakGrowth, received, pieces, largestPiece, sha256, delivered });
  await t.close();
  process.exit(0);
});
`;

interface ReceiverReport {
  readonly peakGrowth: number;
  readonly received: number;
  readonly pieces: number;
  readonly largestPiece: number;
  readonly sha256: string;
  readonly delivered: string[];
}

test.serial('a 64 MiB snapshot streams in chunks to another process, byte-identical, in bounded memory on both sides', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', '--expose-gc', '--input-type=module', '-e', receiverProcess], {
    cwd: packageRoot,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  t.teardown(() => void child.kill());
  const inbox: unknown[] = [];
  let wake: (() => void) | undefined;
  child.on('message', (m) => {
    inbox.push(m);
    wake?.();
  });
  const next = async <T>(): Promise<T> => {
    const deadline = Date.now() + 20_000;
    while (inbox.length === 0) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error('the receiver process did not answer');
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 100);
      });
    }
    return inbox.shift() as T;
  };
  const { port } = await next<{ port: number }>();

  const size = 64 * MiB;
  const seed = 7;
  const sha256 = await pseudoRandomSha256(size, seed);
  const a = new PeerTransport({ id: 'a' });
  t.teardown(() => a.close());
  a.setPeer('b', `127.0.0.1:${port}`);
  // The sender's live memory too (heap + array buffers after a forced collection), sampled as the
  // source is read: a sender that kept every chunk it had sent (Promise.race in its loop) grew by ~66 MiB here.
  setFlagsFromString('--expose_gc');
  const gc = runInNewContext('gc') as () => void;
  const live = (): number => {
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const senderBase = live();
  let senderPeak = 0;
  async function* sampled(): AsyncGenerator<Uint8Array> {
    let n = 0;
    for await (const c of pseudoRandomBytes(size, seed, 256 * 1024)) {
      if (++n % 8 === 0) senderPeak = Math.max(senderPeak, live() - senderBase);
      yield c;
    }
  }
  await a.sendSnapshot({ message: snapshotMessage, sizeBytes: size, sha256 }, sampled());
  t.log(`sender memory grew by at most ${(senderPeak / MiB).toFixed(2)} MiB`);
  t.true(senderPeak < 24 * MiB, `the sender's memory grew by ${senderPeak} bytes`);
  child.send('report');
  const r = await next<ReceiverReport>();

  t.is(r.received, size);
  t.is(r.sha256, sha256, 'the bytes stored equal the bytes sent');
  t.true(r.pieces >= 20, `arrived in ${r.pieces} pieces`);
  t.true(r.largestPiece <= 1 * MiB, `largest piece ${r.largestPiece} bytes`);
  t.log(`receiver memory grew by at most ${(r.peakGrowth / MiB).toFixed(2)} MiB during the 64 MiB transfer`);
  t.true(r.peakGrowth < 8 * MiB, `the receiver's memory grew by ${r.peakGrowth} bytes`);
  t.deepEqual(r.delivered, ['snapshot'], 'the core hears of the snapshot once, after it is stored');
});

test.serial('a slow receiver holds the sender back, and every byte arrives in order', async (t) => {
  const size = 20 * MiB;
  const seed = 8;
  const sha256 = await pseudoRandomSha256(size, seed);
  const p = await startPair();
  t.teardown(() => p.close());
  p.b.onMessage(() => {});
  let produced = 0;
  let consumed = 0;
  let maxAhead = 0;
  let mismatchAt = -1;
  async function* source(): AsyncGenerator<Uint8Array> {
    for await (const piece of pseudoRandomBytes(size, seed, 256 * 1024)) {
      produced += piece.byteLength;
      yield piece;
    }
  }
  p.b.onSnapshot(async (_h, stream) => {
    const reference = pseudoRandomBytes(size, seed);
    let ref = Buffer.alloc(0);
    let pauseAt = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      // Compare with regenerated reference bytes without keeping either side.
      for (let off = 0; off < chunk.length; ) {
        if (ref.length === 0) ref = Buffer.from((await reference.next()).value as Uint8Array);
        const n = Math.min(ref.length, chunk.length - off);
        if (mismatchAt < 0 && !ref.subarray(0, n).equals(chunk.subarray(off, off + n))) mismatchAt = consumed + off;
        ref = ref.subarray(n);
        off += n;
      }
      consumed += chunk.length;
      maxAhead = Math.max(maxAhead, produced - consumed);
      if (consumed >= pauseAt) {
        pauseAt += MiB;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  });
  await p.a.sendSnapshot({ message: snapshotMessage, sizeBytes: size, sha256 }, source());
  t.is(consumed, size);
  t.is(mismatchAt, -1, 'every byte equals the reference');
  t.log(`the sender ran at most ${(maxAhead / MiB).toFixed(2)} MiB ahead of the handler`);
  t.true(maxAhead < 6 * MiB, `the sender ran ${maxAhead} bytes ahead of the receiver's handler`);
});

test.serial('heartbeats and appends keep flowing while a large snapshot is in transfer', async (t) => {
  const size = 20 * MiB;
  const sha256 = await pseudoRandomSha256(size, 11);
  const p = await startPair();
  t.teardown(() => p.close());
  let paused = false;
  let snapshotDone = false;
  let heartbeatsDuring = 0;
  let appendsDuring = 0;
  let bytesWhenPaused = 0;
  p.b.onMessage((m) => {
    if (!paused || snapshotDone) return;
    if (m.type === 'heartbeat') heartbeatsDuring++;
    if (m.type === 'append') appendsDuring++;
  });
  p.b.onSnapshot(async (_h, stream) => {
    let n = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (!paused && n >= 2 * MiB) {
        // Stop reading mid-transfer: the sender's snapshot stream is now blocked on flow control.
        paused = true;
        bytesWhenPaused = n;
        await waitFor(() => heartbeatsDuring >= 20 && appendsDuring >= 5, 'heartbeats and appends during the transfer', 15_000);
      }
    }
  });
  let seq = 0;
  const pump = setInterval(() => {
    p.a.send({ type: 'heartbeat', from: 'a', to: 'b', term: 7, commit: 0, readSeq: seq });
    p.a.send({ type: 'append', from: 'a', to: 'b', term: 7, prevIndex: seq, prevTerm: 7, commit: 0, entries: [] });
    seq++;
  }, 10);
  t.teardown(() => clearInterval(pump));
  await p.a.sendSnapshot({ message: snapshotMessage, sizeBytes: size, sha256 }, pseudoRandomBytes(size, 11));
  snapshotDone = true;
  clearInterval(pump);
  t.true(bytesWhenPaused < size, 'the snapshot was mid-transfer while the heartbeats arrived');
  t.true(heartbeatsDuring >= 20, `${heartbeatsDuring} heartbeats delivered during the transfer`);
  t.true(appendsDuring >= 5, `${appendsDuring} appends delivered during the transfer`);
});

test.serial('a wrong sha256 is rejected with a clear error on the sender and nothing reaches the core', async (t) => {
  const p = await startPair();
  t.teardown(() => p.close());
  const delivered: Message[] = [];
  p.b.onMessage((m) => delivered.push(m));
  let handlerError: unknown;
  p.b.onSnapshot(async (_h, stream) => {
    try {
      await drain(stream);
    } catch (err) {
      handlerError = err;
      throw err;
    }
  });
  const size = 3 * MiB;
  const wrongSha = await pseudoRandomSha256(size, 99);
  const err = await t.throwsAsync(p.a.sendSnapshot({ message: snapshotMessage, sizeBytes: size, sha256: wrongSha }, pseudoRandomBytes(size, 1)));
  t.true(err instanceof TransportError);
  const te = err as TransportError;
  t.is(te.code, 'SNAPSHOT_REJECTED');
  t.is(te.remoteCode, 'SNAPSHOT_CHECKSUM_MISMATCH');
  t.regex(te.message, /b rejected the snapshot at index 44 \(term 7, 3145728 bytes\): the 3145728 bytes received have SHA-256 [0-9a-f]{64}; the header declared [0-9a-f]{64}; the snapshot was not installed/);
  t.is((handlerError as { code?: string })?.code, 'SNAPSHOT_CHECKSUM_MISMATCH', "the handler's stream failed instead of ending");
  t.deepEqual(delivered, []);
});

test.serial('a short source is refused on the sender; a short stream is refused by the receiver', async (t) => {
  const p = await startPair();
  t.teardown(() => p.close());
  const delivered: Message[] = [];
  p.b.onMessage((m) => delivered.push(m));
  let handlerErrors = 0;
  p.b.onSnapshot(async (_h, stream) => {
    try {
      await drain(stream);
    } catch (err) {
      handlerErrors++;
      throw err;
    }
  });
  const size = 2 * MiB;
  const sha256 = await pseudoRandomSha256(size, 5);
  const err = await t.throwsAsync(p.a.sendSnapshot({ message: snapshotMessage, sizeBytes: size, sha256 }, pseudoRandomBytes(size - 1000, 5)));
  t.is((err as TransportError).code, 'SNAPSHOT_SOURCE_SIZE_MISMATCH');
  t.regex(err!.message, /ended after 2096152 bytes; the header declared 2097152/);
  const longer = await t.throwsAsync(p.a.sendSnapshot({ message: snapshotMessage, sizeBytes: size, sha256 }, pseudoRandomBytes(size + 1, 5)));
  t.is((longer as TransportError).code, 'SNAPSHOT_SOURCE_SIZE_MISMATCH');
  t.regex(longer!.message, /yielded more than the declared 2097152 bytes/);

  // A sender that lies: the header says 1,000 bytes, the stream carries 500 and ends cleanly.
  const svc = raftPeerService().installSnapshot;
  const client = new grpc.Client(`127.0.0.1:${p.bPort}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const lie = await new Promise<grpc.ServiceError | null>((resolve) => {
    const call = client.makeClientStreamRequest(svc.path, svc.requestSerialize, svc.responseDeserialize, (e: grpc.ServiceError | null) => resolve(e));
    const body = (sampleMessages('a', 'b').find((m) => m.type === 'snapshot') as SnapshotMessage);
    call.write({
      header: {
        message: { from: body.from, to: body.to, term: body.term, commit: body.commit, snapshot: { index: 44, term: 7, configurationIndex: 44, configuration: { servers: [{ id: 'a', suffrage: 'SUFFRAGE_VOTER' }] } } },
        sizeBytes: 1000,
        sha256: Buffer.alloc(32),
      },
    });
    call.write({ data: Buffer.alloc(500, 1) });
    call.end();
  });
  t.is(lie?.code, grpc.status.INVALID_ARGUMENT);
  t.is(lie?.metadata.get('conclave-code')[0], 'SNAPSHOT_SIZE_MISMATCH');
  t.regex(lie?.details ?? '', /the stream ended after 500 bytes; the header declared 1000 \(short stream\)/);
  await waitFor(() => handlerErrors >= 1, "the lying stream failed in the handler's hands");
  t.deepEqual(delivered, []);
});

test.serial('the receiver refuses a header that does not decode or is not addressed to it', async (t) => {
  const p = await startPair();
  t.teardown(() => p.close());
  let handlerCalls = 0;
  p.b.onSnapshot(async (_h, stream) => {
    handlerCalls++;
    await drain(stream);
  });
  const svc = raftPeerService().installSnapshot;
  const client = new grpc.Client(`127.0.0.1:${p.bPort}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const send = (first: object): Promise<grpc.ServiceError | null> =>
    new Promise((resolve) => {
      const call = client.makeClientStreamRequest(svc.path, svc.requestSerialize, svc.responseDeserialize, (e: grpc.ServiceError | null) => resolve(e));
      call.write(first);
      call.end();
    });
  const dataFirst = await send({ data: Buffer.alloc(10) });
  t.is(dataFirst?.metadata.get('conclave-code')[0], 'SNAPSHOT_BAD_HEADER');
  const noMeta = await send({ header: { message: { from: 'a', to: 'b', term: 1 }, sizeBytes: 1, sha256: Buffer.alloc(32) } });
  t.is(noMeta?.metadata.get('conclave-code')[0], 'SNAPSHOT_BAD_HEADER');
  t.regex(noMeta?.details ?? '', /header\.message\.snapshot: missing/);
  const elsewhere = await send({
    header: {
      message: { from: 'a', to: 'c', term: 1, snapshot: { index: 1, term: 1, configuration: { servers: [] } } },
      sizeBytes: 1,
      sha256: Buffer.alloc(32),
    },
  });
  t.is(elsewhere?.metadata.get('conclave-code')[0], 'SNAPSHOT_MISADDRESSED');
  t.is(handlerCalls, 0);
});

test.serial('a refusing or lazy handler makes the send fail with the reason', async (t) => {
  const p = await startPair();
  t.teardown(() => p.close());
  const size = 1 * MiB;
  const sha256 = await pseudoRandomSha256(size, 2);
  const header = { message: snapshotMessage, sizeBytes: size, sha256 };

  p.b.onSnapshot(async (_h, stream) => {
    await drain(stream);
    throw new Error('disk full: 12 MiB free, 1 MiB needed plus reserve');
  });
  const refused = await t.throwsAsync(p.a.sendSnapshot(header, pseudoRandomBytes(size, 2)));
  t.is((refused as TransportError).remoteCode, 'SNAPSHOT_REFUSED');
  t.regex(refused!.message, /the snapshot handler refused it: disk full/);

  p.b.onSnapshot(async () => {});
  const lazy = await t.throwsAsync(p.a.sendSnapshot(header, pseudoRandomBytes(size, 2)));
  t.is((lazy as TransportError).remoteCode, 'SNAPSHOT_NOT_CONSUMED');
});

test.serial('one snapshot per peer at a time; unknown peers and bad headers fail at once', async (t) => {
  const p = await startPair();
  t.teardown(() => p.close());
  p.b.onMessage(() => {});
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  p.b.onSnapshot(async (_h, stream) => {
    await released;
    await drain(stream);
  });
  const size = 1 * MiB;
  const sha256 = await pseudoRandomSha256(size, 4);
  const first = p.a.sendSnapshot({ message: snapshotMessage, sizeBytes: size, sha256 }, pseudoRandomBytes(size, 4));
  const busy = await t.throwsAsync(p.a.sendSnapshot({ message: snapshotMessage, sizeBytes: size, sha256 }, pseudoRandomBytes(size, 4)));
  t.is((busy as TransportError).code, 'SNAPSHOT_BUSY');
  release();
  await t.notThrowsAsync(first);

  const toNobody = { ...snapshotMessage, to: 'nobody' };
  const unknown = await t.throwsAsync(p.a.sendSnapshot({ message: toNobody, sizeBytes: size, sha256 }, pseudoRandomBytes(size, 4)));
  t.is((unknown as TransportError).code, 'PEER_UNKNOWN');
  const badSha = await t.throwsAsync(p.a.sendSnapshot({ message: snapshotMessage, sizeBytes: size, sha256: 'ABC' }, pseudoRandomBytes(size, 4)));
  t.is((badSha as TransportError).code, 'SNAPSHOT_BAD_ARGUMENT');
});

test.serial('the deadline scales with the size, and an expired one fails the send clearly', async (t) => {
  t.is(snapshotDeadlineMs(0, 10_000, MiB), 10_000);
  t.is(snapshotDeadlineMs(20 * MiB, 10_000, MiB), 30_000);
  t.is(snapshotDeadlineMs(1024 * MiB, 10_000, MiB), 1_034_000);

  const p = await startPair({ snapshotBaseTimeoutMs: 300, snapshotMinThroughputBytesPerSec: 1024 * MiB });
  t.teardown(() => p.close());
  let handlerSaw: unknown;
  p.b.onSnapshot(async (_h, stream) => {
    // A stuck handler that never reads: the deadline must still fail its stream.
    handlerSaw = await new Promise((resolve) => stream.once('error', resolve));
    throw handlerSaw;
  });
  const size = 4 * MiB;
  const sha256 = await pseudoRandomSha256(size, 6);
  const err = await t.throwsAsync(p.a.sendSnapshot({ message: snapshotMessage, sizeBytes: size, sha256 }, pseudoRandomBytes(size, 6)));
  t.is((err as TransportError).code, 'DEADLINE_EXCEEDED');
  t.regex(err!.message, /did not finish within its deadline of 304 ms/);
  await waitFor(() => handlerSaw !== undefined, "the stuck handler's stream to fail");
  t.is((handlerSaw as { code?: string }).code, 'SNAPSHOT_STREAM_BROKEN');

  // A source that stalls forever cannot hang the sender past the deadline either.
  p.b.onSnapshot((_h, stream) => drain(stream));
  async function* stalls(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(1000);
    await new Promise(() => {});
  }
  const stalled = await t.throwsAsync(p.a.sendSnapshot({ message: snapshotMessage, sizeBytes: size, sha256 }, stalls()));
  t.is((stalled as TransportError).code, 'DEADLINE_EXCEEDED');
});

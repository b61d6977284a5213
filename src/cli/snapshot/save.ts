// `conclave snapshot save [options] FILE`, as Consul's (command/snapshot/save/snapshot_save.go):
// GET /v1/snapshot, the body streamed to FILE.unverified (mode 0600) and fsynced, read back and verified
// in full (gzip, tar, both SHA-256 sums, nothing after the end), renamed to FILE, the directory fsynced.
// FILE.unverified is removed on any failure, so a FILE that exists is a complete, verified snapshot.
//
// Where Conclave differs (src/cli/README.md): a body that ends early (the agent aborts the connection
// when a save fails midway) is `Error saving snapshot: ...`, not Consul's `Error writing unverified
// snapshot file: unexpected EOF`; and a failure to connect to the agent at all is `Error connecting to
// Conclave agent: ...` (Consul prints `Error saving snapshot: Get "...": dial tcp ...` for it).

import { createReadStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDir } from '../../base/index.js';
import { goQuote, startSubcommand, type SnapshotDeps } from './common.js';
import { ConnectionError, errorText, httpClientFlags, httpClientOrFail, serverFlags, snapshotRequest, StatusError } from './http-client.js';
import { createProgress, type Progress } from './progress.js';

export const saveFlags = [...httpClientFlags, ...serverFlags];

/** Reads an archive to its end and checks it; rejects with an Error whose message is the reason. */
export type VerifyArchive = (source: AsyncIterable<Uint8Array>, onProgress: (compressedBytes: number) => void) => Promise<void>;

export async function runSave(args: readonly string[], deps: SnapshotDeps, verify: VerifyArchive): Promise<number> {
  const start = startSubcommand(saveFlags, args, 'save', deps);
  if (!start.ok) return start.code;
  const { flags, file, fail } = start;

  const config = await httpClientOrFail(flags, deps.env ?? process.env, fail);
  if (typeof config === 'number') return config;

  let response;
  try {
    response = await snapshotRequest({ method: 'GET', config, ...(deps.timeouts ? { timeouts: deps.timeouts } : {}) });
  } catch (err) {
    if (err instanceof StatusError) return fail(`Error saving snapshot: ${err.message}`);
    if (err instanceof ConnectionError && !err.connected) return fail(`Error connecting to Conclave agent: ${err.message}`);
    return fail(`Error saving snapshot: ${errorText(err)}`);
  }
  const index = parseIndex(response.headers['x-consul-index']);

  const unverified = `${file}.unverified`;
  let done = false;
  try {
    const progress = createProgress({
      label: 'Saving snapshot',
      verb: 'received',
      total: response.length,
      terminal: deps.stderrTerminal,
      stderr: deps.stderr,
      ...(deps.progressIntervalMs !== undefined ? { intervalMs: deps.progressIntervalMs } : {}),
    });
    const written = await download(response.body, unverified, progress);
    progress.finish(written.ok);
    if (!written.ok) return fail(written.line);

    const checked = await verifyFile(unverified, verify, deps);
    if (checked !== undefined) return fail(checked);

    try {
      await rename(unverified, file);
      await fsyncDir(dirname(file));
    } catch (err) {
      return fail(`Error renaming ${goQuote(unverified)} to ${goQuote(file)}: ${errorText(err)}`);
    }
    done = true;
  } finally {
    response.close();
    if (!done) await rm(unverified, { force: true }).catch(() => undefined);
  }
  deps.stdout.write(`Saved and verified snapshot to index ${index}\n`);
  return 0;
}

/** X-Consul-Index as the Go client reads it: a uint64, 0 when absent or unparsable. */
function parseIndex(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && /^\d+$/.test(value) && BigInt(value) < 2n ** 64n ? BigInt(value).toString() : '0';
}

type Downloaded = { readonly ok: true } | { readonly ok: false; readonly line: string };

/** Streams the body into `path` (created 0600, truncated), fsynced and closed. */
async function download(body: AsyncIterable<Uint8Array>, path: string, progress: Progress): Promise<Downloaded> {
  let handle;
  try {
    handle = await open(path, 'w', 0o600);
    await handle.chmod(0o600); // a leftover file keeps its mode through open(); this one holds secrets
  } catch (err) {
    await handle?.close().catch(() => undefined);
    return { ok: false, line: `Error writing unverified snapshot file: ${errorText(err)}` };
  }
  let received = 0;
  try {
    const iterator = body[Symbol.asyncIterator]();
    for (;;) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = await iterator.next();
      } catch (err) {
        return { ok: false, line: `Error saving snapshot: ${errorText(err)} (${received} bytes received)` };
      }
      if (next.done === true) break;
      try {
        await handle.write(next.value);
      } catch (err) {
        return { ok: false, line: `Error writing unverified snapshot file: ${errorText(err)}` };
      }
      received += next.value.byteLength;
      progress.update(received);
    }
    try {
      await handle.sync();
    } catch (err) {
      return { ok: false, line: `Error writing unverified snapshot file: ${errorText(err)}` };
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
  if (received === 0) return { ok: false, line: 'Error saving snapshot: the agent sent an empty body' };
  return { ok: true };
}

/** undefined when the file is a complete, intact archive; else the error line. */
async function verifyFile(path: string, verify: VerifyArchive, deps: SnapshotDeps): Promise<string | undefined> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    return `Error opening snapshot file for verify: ${errorText(err)}`;
  }
  const source = createReadStream(path);
  const opened = new Promise<void>((resolve, reject) => {
    source.once('open', () => resolve());
    source.once('error', reject);
  });
  try {
    await opened;
  } catch (err) {
    return `Error opening snapshot file for verify: ${errorText(err)}`;
  }
  const progress = createProgress({
    label: 'Verifying snapshot',
    verb: 'read',
    total: size,
    terminal: deps.stderrTerminal,
    stderr: deps.stderr,
    ...(deps.progressIntervalMs !== undefined ? { intervalMs: deps.progressIntervalMs } : {}),
  });
  try {
    await verify(source, (n) => progress.update(n));
    progress.finish(true);
    return undefined;
  } catch (err) {
    progress.finish(false);
    return `Error verifying snapshot file: ${errorText(err)}`;
  } finally {
    source.destroy();
  }
}

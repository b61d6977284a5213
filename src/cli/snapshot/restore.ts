// `conclave snapshot restore [options] FILE`, as Consul's (command/snapshot/restore/snapshot_restore.go):
// the file streamed as PUT /v1/snapshot (Content-Type application/octet-stream, Content-Length), then
// `Restored snapshot`. -stale is accepted and ignored, as in Consul. The agent checks the archive before
// it touches anything; the CLI does not read it first (a second pass over a large file for nothing).

import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { startSubcommand, type SnapshotDeps } from './common.js';
import { ConnectionError, errorText, httpClientFlags, httpClientOrFail, serverFlags, snapshotRequest, StatusError } from './http-client.js';
import { createProgress } from './progress.js';

export const restoreFlags = [...httpClientFlags, ...serverFlags];

export async function runRestore(args: readonly string[], deps: SnapshotDeps): Promise<number> {
  const start = startSubcommand(restoreFlags, args, 'restore', deps);
  if (!start.ok) return start.code;
  const { flags, file, fail } = start;

  const config = await httpClientOrFail(flags, deps.env ?? process.env, fail);
  if (typeof config === 'number') return config;

  // Open first, so a missing file is reported before anything is sent; the stream reads from this
  // descriptor, so the length sent is the length of the file that is read.
  let handle;
  let size: number;
  try {
    handle = await open(file, 'r');
    const st = await handle.stat();
    if (!st.isFile()) throw Object.assign(new Error(`${file} is not a regular file`), { code: 'EISDIR' });
    size = st.size;
  } catch (err) {
    await handle?.close().catch(() => undefined);
    return fail(`Error opening snapshot file: ${errorText(err)}`);
  }

  const progress = createProgress({
    label: 'Restoring snapshot',
    verb: 'sent',
    total: size,
    terminal: deps.stderrTerminal,
    stderr: deps.stderr,
    ...(deps.progressIntervalMs !== undefined ? { intervalMs: deps.progressIntervalMs } : {}),
  });
  let sent = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      sent += chunk.length;
      progress.update(sent);
      done(null, chunk);
    },
  });
  const source = createReadStream('', { fd: handle.fd, autoClose: false });
  source.on('error', (err) => counter.destroy(err));
  source.pipe(counter);
  try {
    const response = await snapshotRequest({ method: 'PUT', config, body: { stream: counter, length: size }, ...(deps.timeouts ? { timeouts: deps.timeouts } : {}) });
    for await (const _ of response.body) {
      // the body of a successful restore is empty; drain whatever comes
    }
    progress.finish(true);
  } catch (err) {
    progress.finish(false);
    if (err instanceof StatusError) return fail(`Error restoring snapshot: ${err.message}`);
    if (err instanceof ConnectionError && !err.connected) return fail(`Error connecting to Conclave agent: ${err.message}`);
    return fail(`Error restoring snapshot: ${errorText(err)}`);
  } finally {
    source.destroy();
    await handle.close().catch(() => undefined);
  }
  deps.stdout.write('Restored snapshot\n');
  return 0;
}

// The save's scratch file is opened only when its bytes are pulled and closed when the consumer stops:
// a body destroyed before its first read must not leave a descriptor (and a deleted file's space) behind.

import test from 'ava';
import { readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { scratchBytes } from '../../src/server/snapshot.js';

/** Descriptors this process has open on `path`. */
function openOn(path: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) n++;
    } catch {
      // The descriptor closed while we looked.
    }
  }
  return n;
}

test('a scratch body never read opens nothing; one read in part closes its file when the consumer stops', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-scratch-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'save.state.bin.gz');
  await writeFile(file, Buffer.alloc(4 * 1024 * 1024, 7));

  const unread = Array.from({ length: 20 }, () => scratchBytes(file));
  // An eager open would have happened by now (it is one thread-pool turn).
  await sleep(200);
  t.is(openOn(file), 0, 'bodies that were never read hold no descriptor');
  for (const g of unread) await g.return(undefined);

  const partly = Array.from({ length: 5 }, () => scratchBytes(file));
  for (const g of partly) t.false((await g.next()).done);
  t.is(openOn(file), 5, 'a body being read holds its file open');
  for (const g of partly) await g.return(undefined);
  await sleep(200);
  t.is(openOn(file), 0, 'a consumer that stops closes the file');
});

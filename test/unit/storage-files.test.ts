// writeFileAtomic and fsyncDir: a file is replaced whole or not at all, and no temp file stays behind.

import test, { type ExecutionContext } from 'ava';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { StorageError, fsyncDir, writeFileAtomic } from '../../src/storage/index.js';

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-files-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('writeFileAtomic creates and then replaces a file, mode 0600, leaving only the target', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'node-id');
  await writeFileAtomic(path, 'first');
  t.is(await readFile(path, 'utf8'), 'first');
  await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
  t.deepEqual([...(await readFile(path))], [1, 2, 3]);
  t.is((await stat(path)).mode & 0o777, 0o600);
  t.deepEqual(await readdir(dir), ['node-id']);
});

test('writeFileAtomic honours a mode', async (t) => {
  const path = join(await tempDir(t), 'shared');
  await writeFileAtomic(path, 'x', { mode: 0o644 });
  t.is((await stat(path)).mode & 0o777, 0o644 & ~process.umask());
});

test('a failed writeFileAtomic names the path, leaves the target alone and removes its temp file', async (t) => {
  const dir = await tempDir(t);
  const target = join(dir, 'taken');
  await mkdir(target);
  await writeFile(join(target, 'inside'), 'keep');
  const err = await t.throwsAsync(writeFileAtomic(target, 'bytes'), { instanceOf: StorageError });
  t.is(err!.code, 'FILE_WRITE_FAILED');
  t.is(err!.path, target);
  t.regex(err!.message, /the file was left as it was/);
  t.deepEqual(await readdir(dir), ['taken']);
  t.is(await readFile(join(target, 'inside'), 'utf8'), 'keep');
});

test('writeFileAtomic into a missing directory fails with FILE_WRITE_FAILED', async (t) => {
  const path = join(await tempDir(t), 'no-such-dir', 'file');
  await t.throwsAsync(writeFileAtomic(path, 'x'), { code: 'FILE_WRITE_FAILED', message: /no-such-dir/ } as never);
});

test('fsyncDir succeeds on a directory and names a missing one', async (t) => {
  const dir = await tempDir(t);
  await t.notThrowsAsync(fsyncDir(dir));
  const missing = join(dir, 'gone');
  const err = await t.throwsAsync(fsyncDir(missing), { instanceOf: StorageError });
  t.is(err!.path, missing);
});

// Durable file operations shared by the storage layer and the rest of the project.
//
// POSIX makes a rename atomic but not durable: until the directory holding the name is fsynced, a crash
// can bring back the old name (or lose a newly created file altogether). And a rename may reach the disk
// before the data of the file renamed, unless that data was fsynced first. So every "replace a file"
// here is: write a temp file in the same directory, fsync it, rename it over the target, fsync the
// directory. After a crash the target holds either the old bytes or the new, never a mixture; at worst
// a temp file is left behind, which readers ignore by name.

import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { fsyncDir as fsyncDirRaw } from '../base/index.js';
import { StorageError, describeCause } from './errors.js';

/** Suffix of the temp files writeFileAtomic leaves behind when a crash interrupts it. */
export const atomicTempSuffix = '.atomic-tmp';

/**
 * src/base's fsyncDir at the storage boundary: the same sync, with a failure reported as a StorageError
 * (FILE_WRITE_FAILED, naming the directory and what to check), because every failure of the
 * environment that leaves the storage layer is a StorageError. Layers that want the file system's own
 * error import fsyncDir from src/base.
 */
export async function fsyncDir(dir: string): Promise<void> {
  try {
    await fsyncDirRaw(dir);
  } catch (cause) {
    throw new StorageError(
      'FILE_WRITE_FAILED',
      `cannot fsync directory ${dir} (${describeCause(cause)}); recent renames in it may not survive ` +
        `a crash. Check that the directory exists and the disk is healthy.`,
      { path: dir, cause },
    );
  }
}

export interface WriteFileAtomicOptions {
  /** File mode of the new file. Default 0o600: our files hold cluster state, not for other users. */
  readonly mode?: number;
}

/**
 * Replaces the file at `path` with `data`, durably and atomically: once this resolves the new bytes
 * survive a crash; if it rejects or the process dies midway, `path` still holds its old bytes (or
 * still does not exist). The temp file is removed on failure; a crash may leave one named
 * `<name>.<random>.atomic-tmp` beside the target.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}${atomicTempSuffix}`);
  try {
    const handle = await open(temp, 'wx', options.mode ?? 0o600);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (cause) {
    // Safe to drop: the write's own failure is reported below; a temp file left over is ignored by name.
    await rm(temp, { force: true }).catch(() => undefined);
    throw new StorageError(
      'FILE_WRITE_FAILED',
      `cannot write ${path} (${describeCause(cause)}); the file was left as it was. ` +
        `Check that ${dir} exists, is writable and the disk is not full.`,
      { path, cause },
    );
  }
  await fsyncDir(dir);
}

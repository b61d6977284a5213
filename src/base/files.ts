// File-system helpers every layer may use. They throw the file system's own errors (an ErrnoException
// naming the path): the base knows no layer's error types, so each layer turns a failure into its own
// typed error at its boundary, as it does for every other file-system call.

import { constants as fsConstants } from 'node:fs';
import { open, stat } from 'node:fs/promises';

/**
 * True when `path` exists, false when it does not (ENOENT). Any other failure (EACCES, EIO, ENOTDIR...)
 * rejects: "cannot tell" must not read as "absent", or a caller would create or overwrite what it
 * merely could not see.
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Makes the entries of directory `dir` durable: names created, renamed or removed in it survive a crash
 * once this resolves (POSIX makes a rename atomic, not durable). Rejects with the file system's error
 * when the directory cannot be opened or synced. A no-op on Windows, which cannot open a directory for
 * fsync (and orders metadata updates itself).
 */
export async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

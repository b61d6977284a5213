// Directory handling for the FSM database: fsyncTree and the completion marker, the restore/swap naming, and the recovery rule
// applied when the FSM opens.
//
// A restore builds a complete database in `<dir>.new` (restore.ts), marks it complete, and the swap then
// does: close live db; rename `<dir>` -> `<dir>.old`; rename `<dir>.new` -> `<dir>`; fsync the parent;
// delete `<dir>.old`; reopen. Renames within one directory are atomic on POSIX file systems, so after a
// crash at any point the parent holds one of these states, and `recoverFsmDir` (run by Fsm.open) settles
// each one:
//
//   <dir>  .new(+marker)  .old   meaning                                   recovery
//   yes    any            any    swap not started, or finished             keep <dir>; delete .new, .old
//   no     complete       any    crashed between the two renames           rename .new -> <dir> (finish)
//   no     incomplete/no  yes    unexpected (hand-made); old state exists  rename .old -> <dir> (roll back)
//   no     incomplete/no  no     fresh server                              create an empty db
//
// Deleting an unswapped `.new` loses nothing: the Raft snapshot it was built from is still in the
// snapshot store with an index above the FSM's applied index, so the runtime restores it again.

import { constants as fsConstants } from 'node:fs';
import { open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { exists, fsyncDir } from '../base/index.js';

/** Written last into a restored database directory; its presence means "complete and durable". */
export const restoreCompleteMarker = 'CONCLAVE-RESTORE-COMPLETE';

export function newDirFor(liveDir: string): string {
  return `${liveDir}.new`;
}

export function oldDirFor(liveDir: string): string {
  return `${liveDir}.old`;
}

/** fsync every regular file in `dir` (a LevelDB directory is flat), then the directory itself. */
export async function fsyncTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const handle = await open(join(dir, entry.name), fsConstants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
  await fsyncDir(dir);
}

export async function writeCompleteMarker(dir: string, description: string): Promise<void> {
  const path = join(dir, restoreCompleteMarker);
  await writeFile(path, `${description}\n`, { mode: 0o600 });
  const handle = await open(path, fsConstants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fsyncDir(dir);
}

export async function isCompleteRestore(dir: string): Promise<boolean> {
  return exists(join(dir, restoreCompleteMarker));
}

export type RecoveryAction = 'none' | 'finished-swap' | 'rolled-back-to-old';

/** Settles a crash during a swap (see the table above). Returns what it did, for the caller's log. */
export async function recoverFsmDir(liveDir: string): Promise<RecoveryAction> {
  const parent = dirname(liveDir);
  const newDir = newDirFor(liveDir);
  const oldDir = oldDirFor(liveDir);
  let action: RecoveryAction = 'none';
  if (!(await exists(liveDir))) {
    if ((await exists(newDir)) && (await isCompleteRestore(newDir))) {
      await rename(newDir, liveDir);
      action = 'finished-swap';
    } else if (await exists(oldDir)) {
      await rename(oldDir, liveDir);
      action = 'rolled-back-to-old';
    }
    if (action !== 'none') await fsyncDir(parent);
  }
  await rm(newDir, { recursive: true, force: true });
  await rm(oldDir, { recursive: true, force: true });
  return action;
}


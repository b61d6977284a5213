// Drives a real Fsm through encoded commands with consecutive indexes, as the Raft runtime does: for
// the FSM's own tests. Each test file extends it with the commands it speaks.

import type { ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeCommand, Fsm, type ApplyResult, type Command } from '../../src/fsm/index.js';

/** A temporary directory removed when the test ends. */
export async function tempRoot(t: ExecutionContext, prefix = 'conclave-fsm-'): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return root;
}

export class FsmDriver {
  index: number;
  constructor(readonly fsm: Fsm) {
    this.index = fsm.appliedIndex();
  }

  /** Opens an FSM in `dir` (default: a fresh temporary one), closed when the test ends. */
  static async open<D extends FsmDriver>(this: new (fsm: Fsm) => D, t: ExecutionContext, dir?: string): Promise<D> {
    const fsm = await Fsm.open(dir ?? join(await tempRoot(t), 'fsm'));
    t.teardown(() => fsm.close());
    return new this(fsm);
  }

  run(command: Command): Promise<ApplyResult> {
    this.index += 1;
    return this.fsm.apply(this.index, 1, encodeCommand(command));
  }
}

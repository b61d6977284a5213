// The faults a chaos run injects from inside its sandbox (sandbox.ts): network partitions made with
// firewall rules on each agent's cgroup, and clock jumps made with libfaketime.
//
// Every agent is launched through `sh -c 'echo $$ > <its cgroup>/cgroup.procs && exec node ...'`: it
// is in its cgroup before its first socket exists, and its PID is the agent's own (kill, stop and
// continue reach it). All server-to-server traffic (Raft and forwarded requests) goes to the
// receiver's server port over the sender's own connections, so "A's packets to B's server port are
// dropped" is a one-way partition A -> B: B's messages still reach A. Two such rules are a symmetric
// partition. The workers are outside every agent cgroup: clients reach every server, as in Jepsen.
//
// Clocks: each agent runs with libfaketime preloaded, reading its offset from a file of its own
// (re-read at most once a second). Only the wall clock moves (FAKETIME_DONT_FAKE_MONOTONIC=1): a
// jump is what NTP stepping the clock does; timers and durations on the monotonic clock are untouched.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Launch } from '../support/process-cluster.js';
import { faketimeLibrary, type Sandbox } from './sandbox.js';

const run = promisify(execFile);

export class ChaosNet {
  private readonly blocked = new Set<string>();

  private constructor(private readonly s: Sandbox, private readonly size: number) {}

  static async create(s: Sandbox, size: number): Promise<ChaosNet> {
    for (let i = 0; i < size; i++) {
      await mkdir(join(s.cgroupDir, `node${i + 1}`), { recursive: true });
      await writeFile(clockFile(s, i), '+0\n');
    }
    return new ChaosNet(s, size);
  }

  /** How node i is launched: into its cgroup, under libfaketime. */
  launch(i: number, file: string, args: readonly string[]): Launch {
    return {
      file: '/bin/sh',
      args: ['-c', `echo $$ > '${join(this.s.cgroupDir, `node${i + 1}`, 'cgroup.procs')}' && exec "$0" "$@"`, file, ...args],
      env: {
        LD_PRELOAD: faketimeLibrary,
        FAKETIME_TIMESTAMP_FILE: clockFile(this.s, i),
        FAKETIME_CACHE_DURATION: '1',
        FAKETIME_DONT_FAKE_MONOTONIC: '1',
      },
    };
  }

  /** Drops every packet node `from` sends to node `to`'s server port (`toPort`). */
  async block(from: number, to: number, toPort: number): Promise<void> {
    const rule = ['OUTPUT', '-m', 'cgroup', '--path', `${this.s.cgroupPath}/node${from + 1}`, '-p', 'tcp', '--dport', String(toPort), '-j', 'DROP'];
    await run('iptables', ['-w', '5', '-A', ...rule], { timeout: 10_000 });
    this.blocked.add(`${from}->${to}`);
  }

  /** The blocked directions, as "from->to" (node indexes). */
  blockedNow(): string[] {
    return [...this.blocked];
  }

  /** Removes every rule: every server reaches every other again. */
  async heal(): Promise<void> {
    await run('iptables', ['-w', '5', '-F', 'OUTPUT'], { timeout: 10_000 });
    this.blocked.clear();
  }

  /** Sets node i's wall clock `offsetSeconds` from the real one (0: back to real time). */
  async setClock(i: number, offsetSeconds: number): Promise<void> {
    if (i < 0 || i >= this.size) throw new Error(`no node ${i}`);
    await writeFile(clockFile(this.s, i), `${offsetSeconds >= 0 ? '+' : ''}${Math.trunc(offsetSeconds)}s\n`);
  }
}

function clockFile(s: Sandbox, i: number): string {
  return join(s.tmp, `clock-node${i + 1}`);
}

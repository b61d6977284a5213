// A `conclave agent -dev` process for tests: started as `node` on the TypeScript source (never
// through npx, so a signal to its PID reaches the agent), on free ports, with TMPDIR pointed where the
// test says (so what -dev leaves behind can be checked), its output kept, and SIGKILLed by PID at
// teardown if the test has not stopped it.

import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts, sleep } from './process-cluster.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface DevAgent {
  readonly proc: ChildProcess;
  readonly output: string[];
  readonly exited: Promise<number | null>;
  readonly httpPort: number;
  readonly serverPort: number;
}

/** Starts `conclave agent -dev` with `extra` flags after the ports (a later -http-port wins) and `env` added to its environment. */
export async function startDev(t: ExecutionContext, tmp: string, extra: readonly string[] = [], env: Readonly<Record<string, string>> = {}): Promise<DevAgent> {
  const [httpPort, serverPort] = (await freePorts(2)) as [number, number];
  const proc = spawn(process.execPath, ['--import=tsx', join(root, 'src/cli/main.ts'), 'agent', '-dev', '-http-port', String(httpPort), '-server-port', String(serverPort), '-log-level', 'info', ...extra], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TMPDIR: tmp, NODE_ENV: 'test', ...env },
  });
  const output: string[] = [];
  proc.stdout?.on('data', (b: Buffer) => output.push(b.toString()));
  proc.stderr?.on('data', (b: Buffer) => output.push(b.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await Promise.race([exited, sleep(5000)]);
    }
  });
  return { proc, output, exited, httpPort, serverPort };
}

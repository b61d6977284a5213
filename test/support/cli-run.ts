// Runs `conclave <argv>` in this process through runCli, with stdout and stderr captured, no agent and
// no signals: for the CLI's own tests.

import { runCli, type CliDeps } from '../../src/cli/run.js';

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runCliCaptured(argv: readonly string[], env: Record<string, string> = {}): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const deps: CliDeps = {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    stdoutIsTty: false,
    loadStartAgent: () => Promise.reject(new Error('no agent in these tests')),
    signals: { on: () => undefined, off: () => undefined },
    exitNow: () => undefined,
    env,
  };
  const code = await runCli(argv, deps);
  return { code, stdout: out.join(''), stderr: err.join('') };
}

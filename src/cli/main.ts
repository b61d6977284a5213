// The `conclave` executable (bin/conclave.js loads the compiled copy of this file, or this file
// through tsx). It wires the command to the real process: stdout, stderr, signals, the server module.
// Exit statuses: src/cli/exit-codes.ts.

import { runCli } from './run.js';

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdoutIsTty: process.stdout.isTTY === true,
  stderrTerminal: process.stderr.isTTY === true ? process.stderr : undefined,
  env: process.env,
  loadStartAgent: async () => (await import('./agent-command.js')).startAgent,
  signals: process,
  exitNow: (status) => process.exit(status),
});
// Exit explicitly: a stopped agent may leave handles (sockets in TIME_WAIT, timers) that would keep
// the process alive. stdout and stderr are synchronous for files and pipes on POSIX, and the logger
// writes synchronously, so nothing written is lost.
process.exit(code);

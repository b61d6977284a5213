// Exit statuses of the `conclave` command, in one table. Consul's CLI uses 0 and 1 (and 2 for
// `lock -child-exit-code`), and so do we, so scripts written for `consul` read ours the same way.
//
// | status | when                                                                                   |
// |--------|----------------------------------------------------------------------------------------|
// | 0      | `--help`, `-h`, `version`; the agent shut down cleanly after SIGINT or SIGTERM, or      |
// |        | stopped by itself without an error                                                     |
// | 0      | `snapshot save/restore/inspect/decode` succeeded; `lock` ran its child (whatever the    |
// |        | child's own status, unless -child-exit-code)                                            |
// | 2      | `lock -child-exit-code`: the child failed (Consul's)                                    |
// | 1      | no command or an unknown command (help is printed to stderr); a bad flag or a bad       |
// |        | configuration (nothing was started, nothing written); the server module failed to load; |
// |        | the agent failed to start, stopped with an error, or failed to close; a clean shutdown |
// |        | took longer than 15 s; a second SIGINT/SIGTERM during shutdown (exits at once); any     |
// |        | `snapshot` error (argument, connection, HTTP status, file, verification), or           |
// |        | `snapshot` without a subcommand; any `lock` error (usage, connection, a key that is not |
// |        | a lock, a timeout or shutdown while waiting, a failed release or cleanup)              |
//
// SIGHUP is logged and ignored (Consul reloads on it; Conclave cannot).
// Node itself exits with 1 on an uncaught exception (an invariant failure is one), and a process killed
// by signal N reports 128 + N to a shell (SIGKILL: 137).

export const exitCodes = {
  ok: 0,
  error: 1,
} as const;

export type ExitCode = (typeof exitCodes)[keyof typeof exitCodes];

// The sandbox a chaos run lives in, and the guard that removes it whatever happens.
//
// Partitions need firewall rules that tell one agent's packets from another's. On loopback every
// connection comes from 127.0.0.1 (gRPC cannot bind a source address), so the rules match on the
// sending process's cgroup instead (iptables -m cgroup --path, test-tooling.md section 2). To keep
// those rules off the shared host, the run lives in a network namespace of its own (`unshare --net`,
// with only its own loopback): its rules vanish with it.
//
// The guard is the process the user started (`npm run chaos`, or the ava test spawning the CLI). It:
//   - makes a temporary directory (the run's TMPDIR: cluster data, clock files) and a cgroup parent;
//   - runs the same script again inside `unshare --net`, told where both are (CONCLAVE_CHAOS_SANDBOX);
//   - passes SIGINT/SIGTERM on, and SIGKILLs the run after a grace period;
//   - when the run has ended, however it ended: SIGKILLs every process still in the run's cgroups (by
//     PID, read from cgroup.procs), removes the cgroups and the temporary directory. With its last
//     process gone, the namespace and its firewall rules are gone too.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

const sandboxVar = 'CONCLAVE_CHAOS_SANDBOX';
export const faketimeLibrary = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

export interface Sandbox {
  /** The run's cgroup parent, an absolute path under the cgroup2 mount. */
  readonly cgroupDir: string;
  /** The same, relative to the cgroup2 root (what iptables -m cgroup --path takes). */
  readonly cgroupPath: string;
  /** The run's temporary directory (also its TMPDIR). */
  readonly tmp: string;
}

/** The sandbox this process runs in, or undefined when it runs outside one. */
export function currentSandbox(): Sandbox | undefined {
  const raw = process.env[sandboxVar];
  if (raw === undefined || raw === '') return undefined;
  return JSON.parse(raw) as Sandbox;
}

function cgroup2Root(): string | undefined {
  try {
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mountPoint, type] = line.split(' ');
      if (type === 'cgroup2' && mountPoint !== undefined) return mountPoint;
    }
  } catch {
    // no /proc: reported below
  }
  return undefined;
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin']).some((d) => existsSync(join(d, command)));
}

/** What this machine lacks for a chaos run, in words a person can act on; [] when nothing. */
export function missingForChaos(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (network namespaces, cgroups and firewall rules need it)');
  if (cgroup2Root() === undefined) missing.push('a cgroup2 mount (see /proc/mounts)');
  for (const c of ['unshare', 'ip', 'iptables']) if (!onPath(c)) missing.push(`the ${c} command (apt-get install ${c === 'unshare' ? 'util-linux' : c === 'ip' ? 'iproute2' : 'iptables'})`);
  if (!existsSync(faketimeLibrary)) missing.push(`libfaketime at ${faketimeLibrary} (apt-get install faketime)`);
  return missing;
}

/**
 * Runs `script` with `args` inside a new sandbox and resolves with its exit code once the sandbox is
 * gone. SIGINT and SIGTERM to this process go on to the run; it is SIGKILLed `graceMs` later.
 */
export async function runInSandbox(script: string, args: readonly string[], graceMs = 20_000): Promise<number> {
  const root = cgroup2Root();
  if (root === undefined) throw new Error('no cgroup2 mount');
  const tmp = await mkdtemp(join(tmpdir(), 'conclave-chaos-'));
  const cgroupPath = `conclave-chaos-${basename(tmp).replace(/^conclave-chaos-/, '')}`;
  const sandbox: Sandbox = { cgroupDir: join(root, cgroupPath), cgroupPath, tmp };
  const child = spawn('unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, ...process.execArgv, script, ...args], {
    stdio: 'inherit',
    env: { ...process.env, [sandboxVar]: JSON.stringify(sandbox), TMPDIR: tmp },
  });
  let killTimer: NodeJS.Timeout | undefined;
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
    killTimer ??= setTimeout(() => child.kill('SIGKILL'), graceMs);
  };
  const onInt = (): void => forward('SIGINT');
  const onTerm = (): void => forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    return await new Promise<number>((resolve) => {
      child.once('error', (e) => {
        console.error(`chaos: could not start the sandbox: ${e.message}`);
        resolve(2);
      });
      child.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128 + 9)));
    });
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    if (killTimer !== undefined) clearTimeout(killTimer);
    await removeSandbox(sandbox);
  }
}

/** SIGKILLs every process left in the sandbox's cgroups, then removes them and its directory. */
export async function removeSandbox(s: Sandbox): Promise<void> {
  const groups = existsSync(s.cgroupDir)
    ? [...(await readdir(s.cgroupDir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => join(s.cgroupDir, d.name)), s.cgroupDir]
    : [];
  for (const g of groups) {
    // A cgroup can be removed only once empty; a killed process leaves it within moments.
    for (let attempt = 0; attempt < 100; attempt++) {
      const pids = (await readFile(join(g, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter((p) => p !== '').map(Number);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      try {
        await rmdir(g);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
        if (attempt === 99) console.error(`chaos: could not remove cgroup ${g}: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  await rm(s.tmp, { recursive: true, force: true });
}

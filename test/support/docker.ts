// A private Docker daemon for a test, and a Node base image built from this machine's own Node runtime
// (these machines reach no image registry). Everything is undone when the test ends, also when it
// fails: the containers, volumes and images (by `docker-compose down`, run by the test), the daemon
// (by its PID), its state directory, and the host settings dockerd changes (ip_forward). See
// ../shared/reference/test-tooling.md, section 3.
//
// The daemon keeps its state under a temporary directory, listens on its own socket, leaves the host's
// iptables alone (--iptables=false) and creates no docker0 bridge (--bridge=none): compose networks are
// bridges of their own, and published ports go through docker-proxy.

import type { ExecutionContext } from 'ava';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, cp, mkdir, mkdtemp, readdir, readFile, rm, rmdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export const dockerd = '/usr/sbin/dockerd';
/** Debian's docker CLI (docker.io), which matches its daemon and builds with the classic builder. */
export const dockerCli = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
export const dockerCompose = '/usr/bin/docker-compose';

export interface Exec {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end, bounded by `timeoutMs`; never throws for a non-zero exit. */
export function run(file: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: Buffer; cwd?: string } = {}): Promise<Exec> {
  return new Promise((resolve) => {
    const child = execFile(file, args, {
      env: { ...process.env, ...options.env },
      timeout: options.timeoutMs ?? 120_000,
      maxBuffer: 64 * 1024 * 1024,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err !== null && typeof err.code !== 'number' ? `\n${err.message}` : '') });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

export interface DockerDaemon {
  /** The environment that points docker and docker-compose at this daemon. */
  readonly env: NodeJS.ProcessEnv;
  readonly root: string;
  /** Runs the docker CLI against this daemon. */
  docker(args: readonly string[], o?: { timeoutMs?: number; input?: Buffer }): Promise<Exec>;
}

/**
 * Starts dockerd for this test and stops it at teardown. Throws a plain message when the daemon
 * cannot be started (not installed, or it fails to come up), so the test fails and says why.
 */
export async function startDockerDaemon(t: ExecutionContext): Promise<DockerDaemon> {
  for (const tool of [dockerd, dockerCompose]) {
    if (!existsSync(tool)) {
      throw new Error(`${tool} is missing: install Debian's docker.io and docker-compose (apt-get install -y --no-install-recommends docker.io docker-compose); .ci/run does`);
    }
  }
  const root = await mkdtemp(join(tmpdir(), 'conclave-docker-'));
  const socket = join(root, 'docker.sock');
  const ipForward = await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8').then((s) => s.trim(), () => undefined);
  // dockerd makes a `docker` cgroup in every hierarchy; those that were not there before are removed after.
  const cgroupDirs = (await readdir('/sys/fs/cgroup').catch(() => [] as string[])).map((h) => join('/sys/fs/cgroup', h, 'docker'));
  const newCgroups = cgroupDirs.filter((dir) => !existsSync(dir));
  const log: string[] = [];
  const child: ChildProcess = spawn(dockerd, [
    '--data-root', join(root, 'data'), '--exec-root', join(root, 'exec'), '-H', `unix://${socket}`,
    '--pidfile', join(root, 'dockerd.pid'), '--iptables=false', '--ip6tables=false', '--bridge=none',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => log.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.teardown(async () => {
    if (child.exitCode === null && child.pid !== undefined) {
      child.kill('SIGTERM');
      const stopped = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 20_000))]);
      if (!stopped) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    if (ipForward !== undefined) await writeFile('/proc/sys/net/ipv4/ip_forward', ipForward).catch(() => undefined);
    // dockerd leaves its default network namespace mounted under its exec root.
    const mounts = (await readFile('/proc/mounts', 'utf8').catch(() => '')).split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(`${root}/`));
    for (const m of mounts.reverse()) await run('umount', ['-l', m], { timeoutMs: 10_000 });
    for (const dir of newCgroups) await rmdir(dir).catch(() => undefined);
    await rm(root, { recursive: true, force: true, maxRetries: 3 });
  });
  const env = { DOCKER_HOST: `unix://${socket}`, DOCKER_BUILDKIT: '0', COMPOSE_DOCKER_CLI_BUILD: '0' };
  const docker = (args: readonly string[], o: { timeoutMs?: number; input?: Buffer } = {}): Promise<Exec> => run(dockerCli, args, { env, ...o });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`dockerd exited at start (code ${child.exitCode}):\n${log.join('').slice(-2000)}`);
    if ((await docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 5_000 })).code === 0) break;
    if (Date.now() > deadline) throw new Error(`dockerd did not answer within 30 s:\n${log.join('').slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { env, root, docker };
}

/**
 * Imports a minimal Node 20 image from this machine's runtime: node and the libraries it links, npm,
 * /usr/bin/env (npm's shebang), CA certificates, and a `node` user (uid 1000) as the official image has.
 * No shell: the Dockerfile runs everything in exec form.
 */
export async function importNodeBaseImage(d: DockerDaemon, tag: string): Promise<void> {
  const rootfs = join(d.root, 'rootfs');
  await mkdir(rootfs, { recursive: true });
  const copyWithLibs = async (binary: string, to: string): Promise<void> => {
    await mkdir(join(rootfs, dirname(to)), { recursive: true });
    await copyFile(binary, join(rootfs, to));
    await chmod(join(rootfs, to), 0o755);
    const ldd = await run('ldd', [binary]);
    for (const line of ldd.stdout.split('\n')) {
      const lib = /=>\s*(\/\S+)/.exec(line)?.[1] ?? /^\s*(\/\S+)\s/.exec(line)?.[1];
      if (lib === undefined) continue;
      await mkdir(join(rootfs, dirname(lib)), { recursive: true });
      await copyFile(lib, join(rootfs, lib));
    }
  };
  await copyWithLibs(process.execPath, '/usr/local/bin/node');
  await copyWithLibs('/usr/bin/env', '/usr/bin/env');
  const npmRoot = ['/usr/lib/node_modules/npm', '/usr/local/lib/node_modules/npm'].find((p) => existsSync(p));
  if (npmRoot === undefined) throw new Error('npm is not installed where Node keeps it (/usr/lib/node_modules/npm)');
  await cp(npmRoot, join(rootfs, 'usr/local/lib/node_modules/npm'), { recursive: true });
  await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(rootfs, 'usr/local/bin/npm'));
  await mkdir(join(rootfs, 'etc/ssl/certs'), { recursive: true });
  await copyFile('/etc/ssl/certs/ca-certificates.crt', join(rootfs, 'etc/ssl/certs/ca-certificates.crt'));
  await writeFile(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/usr/sbin/nologin\nnode:x:1000:1000::/home/node:/usr/sbin/nologin\n');
  await writeFile(join(rootfs, 'etc/group'), 'root:x:0:\nnode:x:1000:\n');
  for (const dir of ['tmp', 'root', 'home/node']) await mkdir(join(rootfs, dir), { recursive: true });
  await chmod(join(rootfs, 'tmp'), 0o1777);
  await chown(join(rootfs, 'home/node'), 1000, 1000);
  const tar = await run('tar', ['-C', rootfs, '-c', '-f', join(d.root, 'rootfs.tar'), '.']);
  if (tar.code !== 0) throw new Error(`packing the base image failed: ${tar.stderr}`);
  const imported = await d.docker(['import', '--change', 'ENV PATH=/usr/local/bin:/usr/bin:/bin', '--change', 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt',
    join(d.root, 'rootfs.tar'), tag], { timeoutMs: 120_000 });
  if (imported.code !== 0) throw new Error(`docker import failed: ${imported.stderr}`);
  await rm(rootfs, { recursive: true, force: true });
  await rm(join(d.root, 'rootfs.tar'), { force: true });
}

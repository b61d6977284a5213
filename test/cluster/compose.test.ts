// The docker-compose cluster, for real: a private Docker daemon (test/support/docker.ts), a Node base
// image made from this machine's runtime (no registry is reachable here), the image built from the
// repository's Dockerfile, and docker-compose.yml brought up as users do. The three servers bootstrap
// themselves; a write through one is read through another; `conclave snapshot save` from the host saves
// the cluster, `conclave snapshot restore` brings it back after the data changed; a server stops cleanly
// on SIGTERM; `down -v` removes containers, network and volumes. The daemon, its images, its state and
// the host settings it touched are removed at the end, also when the test fails. Where the daemon
// cannot be started, the test fails and says why.

import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dockerCompose, importNodeBaseImage, run, startDockerDaemon } from '../support/docker.js';
import { runCliCaptured } from '../support/cli-run.js';
import { freePorts, waitFor } from '../support/process-cluster.js';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));

test.serial('docker compose: the image builds, three servers bootstrap, serve, save and restore a snapshot from the host, stop cleanly', async (t) => {
  t.timeout(15 * 60_000);
  const d = await startDockerDaemon(t);
  const suffix = `${process.pid}-${Date.now()}`;
  const baseTag = `conclave-test-node:${suffix}`;
  const imageTag = `conclave-test:${suffix}`;
  const project = `conclavetest${process.pid}`;
  await importNodeBaseImage(d, baseTag);
  // --network host: this daemon sets up no NAT for containers, and npm ci needs the registry.
  const build = await d.docker(['build', '--network', 'host', '--build-arg', `BASE_IMAGE=${baseTag}`, '-t', imageTag, repo], { timeoutMs: 10 * 60_000 });
  t.is(build.code, 0, `docker build failed:\n${build.stdout.slice(-3000)}\n${build.stderr.slice(-2000)}`);

  const ports = await freePorts(3);
  const env = {
    ...d.env, CONCLAVE_IMAGE: imageTag,
    CONCLAVE_PORT_1: String(ports[0]), CONCLAVE_PORT_2: String(ports[1]), CONCLAVE_PORT_3: String(ports[2]),
  };
  const compose = (args: readonly string[], timeoutMs = 120_000): ReturnType<typeof run> =>
    run(dockerCompose, ['-p', project, '-f', join(repo, 'docker-compose.yml'), ...args], { env, timeoutMs, cwd: repo });
  t.teardown(async () => {
    await compose(['down', '-v', '--rmi', 'all', '--remove-orphans']);
    await d.docker(['rmi', '-f', baseTag]);
  });

  const up = await compose(['up', '-d', '--no-build']);
  t.is(up.code, 0, up.stderr);
  const url = (i: number, path: string): string => `http://127.0.0.1:${ports[i]}${path}`;
  // Every request is bounded: a published port can accept a connection its container never answers.
  const http = (i: number, path: string, init: RequestInit = {}): Promise<Response> => fetch(url(i, path), { ...init, signal: AbortSignal.timeout(10_000) });
  t.log(`built ${imageTag}; compose up on ports ${ports.join(', ')}`);
  for (const i of [0, 1, 2]) {
    await waitFor(`node${i + 1} to know a leader`, async () => {
      const r = await http(i, '/v1/status/leader').catch(() => undefined);
      return r?.status === 200 && (await r.json().catch(() => '')) !== '' ? true : undefined;
    }, 90_000);
  }
  t.log('every server knows a leader');
  const ps = await d.docker(['ps', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Names}}']);
  const containers = ps.stdout.trim().split('\n').sort();
  t.is(containers.length, 3, ps.stdout);
  await waitFor('every container healthy (its compose health check)', async () => {
    const health = await d.docker(['inspect', '-f', '{{.State.Health.Status}}', ...containers]);
    return health.stdout.trim().split('\n').every((s) => s === 'healthy') ? true : undefined;
  }, 90_000);
  const user = await d.docker(['inspect', '-f', '{{.Config.User}}', containers[0] as string]);
  t.is(user.stdout.trim(), 'node', 'the image runs as an unprivileged user');
  const size = Number((await d.docker(['image', 'inspect', '-f', '{{.Size}}', imageTag])).stdout.trim());
  t.true(size < 300 * 1024 * 1024, `the image is ${Math.round(size / 1024 / 1024)} MiB`);

  t.log('healthy, unprivileged, small');
  // Write through node1, read through node2.
  t.is(await (await http(0, '/v1/kv/app/config', { method: 'PUT', body: 'v1' })).text(), 'true');
  t.is(await (await http(1, '/v1/kv/app/config?raw')).text(), 'v1');

  // Save from the host with the CLI, change the data, restore through node3.
  const dir = await mkdtemp(join(tmpdir(), 'conclave-compose-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'backup.snap');
  const save = await runCliCaptured(['snapshot', 'save', `-http-addr=127.0.0.1:${ports[0]}`, file]);
  t.is(save.code, 0, save.stderr);
  t.regex(save.stdout, /^Saved and verified snapshot to index \d+\n$/);
  t.is(await (await http(0, '/v1/kv/app/config', { method: 'PUT', body: 'v2' })).text(), 'true');
  t.is(await (await http(0, '/v1/kv/app/later', { method: 'PUT', body: 'x' })).text(), 'true');
  const restore = await runCliCaptured(['snapshot', 'restore', `-http-addr=127.0.0.1:${ports[2]}`, file]);
  t.is(restore.code, 0, restore.stderr);
  t.regex(restore.stdout, /Restored snapshot/);
  t.is(await (await http(1, '/v1/kv/app/config?raw')).text(), 'v1', 'the snapshot\'s value, read through node2');
  t.is((await http(0, '/v1/kv/app/later')).status, 404, 'the key written after the save is gone');

  // SIGTERM: a server stops cleanly, within seconds.
  const started = performance.now();
  const stop = await compose(['stop', '-t', '15', 'node3']);
  const stopMs = performance.now() - started;
  t.is(stop.code, 0, stop.stderr);
  t.true(stopMs < 10_000, `node3 stopped in ${Math.round(stopMs)} ms`);
  const node3 = containers.find((c) => c.includes('node3')) as string;
  t.is((await d.docker(['inspect', '-f', '{{.State.ExitCode}}', node3])).stdout.trim(), '0', 'exit code 0 after SIGTERM');

  const down = await compose(['down', '-v']);
  t.is(down.code, 0, down.stderr);
  const volumes = await d.docker(['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`]);
  t.is(volumes.stdout.trim(), '', 'down -v removes the named volumes');
});

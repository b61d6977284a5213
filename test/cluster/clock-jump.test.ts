// A server whose wall clock is stepped (NTP, an operator) must not change the durations it keeps:
// they run on the monotonic clock. The agent runs under libfaketime (Debian's faketime; .ci/run
// installs it), with only its wall clock moved. Lock-delay is the case a user sees: a lock released by
// a destroyed session stays unavailable for its LockDelay, whatever the clock says.
import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDev } from '../support/dev-agent.js';
import { okJson, waitFor } from '../support/process-cluster.js';
import { faketimeLibrary } from '../chaos/sandbox.js';

test('a wall clock jumped an hour ahead does not end a lock-delay early', async (t) => {
  t.timeout(120_000);
  t.true(existsSync(faketimeLibrary), `this test needs libfaketime at ${faketimeLibrary}: apt-get install faketime`);
  if (!existsSync(faketimeLibrary)) return;
  const tmp = await mkdtemp(join(tmpdir(), 'conclave-clock-'));
  t.teardown(() => rm(tmp, { recursive: true, force: true }));
  const clock = join(tmp, 'clock');
  await writeFile(clock, '+0\n');
  const dev = await startDev(t, tmp, [], {
    LD_PRELOAD: faketimeLibrary, FAKETIME_TIMESTAMP_FILE: clock, FAKETIME_CACHE_DURATION: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1',
  });
  const http = (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`http://127.0.0.1:${dev.httpPort}${path}`, { ...init, signal: AbortSignal.timeout(10_000) });
  await waitFor('the dev agent to lead', async () => ((await http('/v1/status/leader')).status === 200 ? true : undefined), 60_000, () => dev.output.join(''));
  const session = async (): Promise<string> =>
    (await okJson<{ ID: string }>(await http('/v1/session/create', { method: 'PUT', body: JSON.stringify({ LockDelay: '60s' }) }), 'session create')).ID;
  const acquire = async (id: string): Promise<boolean> => okJson<boolean>(await http(`/v1/kv/locked?acquire=${id}`, { method: 'PUT', body: 'x' }), 'acquire');

  const first = await session();
  t.true(await acquire(first));
  await okJson(await http(`/v1/session/destroy/${first}`, { method: 'PUT' }), 'session destroy');
  const second = await session();
  t.false(await acquire(second), 'the lock is under its 60 s lock-delay');

  await writeFile(clock, '+3600s\n');
  // The agent's HTTP Date header shows its (faked) wall clock: wait until it reads an hour ahead.
  await waitFor('the agent\'s clock to read an hour ahead', async () => {
    const date = Date.parse((await http('/v1/status/leader')).headers.get('date') ?? '');
    return date - Date.now() > 3_500_000 ? true : undefined;
  }, 15_000);
  t.false(await acquire(second), 'still under lock-delay: an hour of wall clock is not 60 s of time');
});

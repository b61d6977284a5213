// Issue 10: "two processes competing for a lock with `conclave lock` never both hold it, across a leader
// kill". Two loops run the real `conclave lock` executable against the two followers of a 3-process
// cluster, each child taking a marker file exclusively while it runs; the leader is SIGKILLed while they
// compete. No child may ever find the marker taken (both holding at once), and every run must get its
// turn. Every wait is bounded.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcessCluster, waitFor } from '../support/process-cluster.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const runsPerLoop = 4;

function conclaveLock(httpPort: number, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, CONSUL_HTTP_ADDR: `127.0.0.1:${httpPort}` };
    delete env['CONSUL_HTTP_TOKEN'];
    execFile(process.execPath, ['--import=tsx', 'src/cli/main.ts', 'lock', ...args], { cwd: root, timeout: 120_000, env }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
    });
  });
}

test.serial('two conclave lock loops never hold the lock at once, across a leader SIGKILL', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-lock-e2e-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const log = join(dir, 'log');
  await writeFile(log, '');
  const child = join(dir, 'child.mjs');
  // Holds the marker for 700 ms; finding it already there means two holders at once.
  await writeFile(child, `
import { appendFileSync, closeSync, openSync, unlinkSync } from 'node:fs';
const [dir, name] = process.argv.slice(2);
const marker = dir + '/held';
let fd;
try { fd = openSync(marker, 'wx'); } catch { appendFileSync(dir + '/log', 'VIOLATION ' + name + '\\n'); }
appendFileSync(dir + '/log', 'enter ' + name + '\\n');
const done = () => { if (fd !== undefined) { closeSync(fd); unlinkSync(marker); } appendFileSync(dir + '/log', 'exit ' + name + '\\n'); process.exit(0); };
process.on('SIGTERM', done);
setTimeout(done, 700);
`);
  const c = await ProcessCluster.create(t, { size: 3, tickMs: 50, electionTimeoutTicks: 20 });
  c.startAll();
  const leader = await c.leader();
  const followers = [0, 1, 2].filter((i) => i !== leader);
  const outcomes: Array<{ code: number | null; stdout: string; stderr: string }> = [];
  const loop = async (name: string, node: number): Promise<void> => {
    for (let k = 0; k < runsPerLoop; k++) {
      outcomes.push(await conclaveLock(c.node(node).httpPort, ['-shell=false', 'service/report', process.execPath, child, dir, `${name}${k}`]));
    }
  };
  const loops = Promise.all([loop('a', followers[0] as number), loop('b', followers[1] as number)]);
  await waitFor('two runs to have held the lock', async () => ((await readFile(log, 'utf8')).split('\n').filter((l) => l.startsWith('enter')).length >= 2 ? true : undefined), 60_000);
  await c.kill(leader);
  await loops;

  const lines = (await readFile(log, 'utf8')).split('\n').filter((l) => l !== '');
  t.false(lines.some((l) => l.startsWith('VIOLATION')), `two holders at once:\n${lines.join('\n')}`);
  t.is(lines.filter((l) => l.startsWith('enter')).length, 2 * runsPerLoop, `every run got its turn:\n${lines.join('\n')}\n${outcomes.map((o) => o.stderr).join('')}`);
  // Strictly alternating enter/exit of the same run: one holder at a time.
  for (let i = 0; i < lines.length; i += 2) {
    const enter = lines[i] ?? '';
    t.is(lines[i + 1], enter.replace('enter', 'exit'), `line ${i}: ${enter} is followed by its own exit`);
  }
  t.true(outcomes.every((o) => o.code === 0), outcomes.map((o) => `${String(o.code)} ${o.stderr}`).join('\n'));
});

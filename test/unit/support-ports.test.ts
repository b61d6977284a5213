// The process-cluster helper's port picker: every port distinct, outside the kernel's ephemeral range
// (where listen(0) and outgoing connections draw theirs), and free when handed out.
import test from 'ava';
import { createServer } from 'node:net';
import { agentPortRange, ephemeralLow, freePorts } from '../support/process-cluster.js';

test('freePorts hands out distinct free ports below the ephemeral range', async (t) => {
  const ports = await freePorts(200);
  t.is(new Set(ports).size, 200);
  const range = agentPortRange();
  // On this kind of machine (ephemeral ports from 32768) the range sits wholly below them.
  if (ephemeralLow() >= range.low + 1000) t.true(range.high <= ephemeralLow());
  for (const p of ports) t.true(p >= range.low && p < range.high, `port ${p} is outside ${range.low}-${range.high - 1}`);
  // Each is free once returned: bind a few to check.
  for (const p of ports.slice(0, 10)) {
    await new Promise<void>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(p, '127.0.0.1', () => s.close(() => resolve()));
    });
  }
});

test('freePorts skips ports that are taken', async (t) => {
  // A range of 20 with 10 taken: asking for 10 must give exactly the other 10.
  const [base] = await freePorts(1);
  const low = Math.min(base as number, 31_900);
  const range = Array.from({ length: 20 }, (_, i) => low + i);
  const taken = range.filter((_, i) => i % 2 === 0);
  const servers = [];
  for (const p of taken) {
    servers.push(await new Promise<ReturnType<typeof createServer>>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(s)); // already in use by someone else: taken all the same
      s.listen(p, '127.0.0.1', () => resolve(s));
    }));
  }
  try {
    const got = await freePorts(10, low, low + 20);
    t.deepEqual([...got].sort((a, b) => a - b), range.filter((p) => !taken.includes(p)));
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r()))));
  }
});

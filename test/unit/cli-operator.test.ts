// `conclave operator raft ...` and `conclave catalog datacenters` through runCli against the HTTP harness
// (a single-node stand-in): Consul's table and lines, the request each sends, and its errors.

import test from 'ava';
import { columnize } from '../../src/cli/operator.js';
import { runCliCaptured, type CliRun } from '../support/cli-run.js';
import { startHarness, type Harness } from '../support/http-harness.js';

function cli(h: Harness, argv: string[]): Promise<CliRun> {
  return runCliCaptured(argv, { CONSUL_HTTP_ADDR: `127.0.0.1:${h.http.address.port}` });
}

test('operator raft list-peers prints Consul\'s columns', async (t) => {
  const h = await startHarness(t);
  const r = await cli(h, ['operator', 'raft', 'list-peers']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'Node    ID         Address         State   Voter  RaftProtocol\nnode-1  node-1-id  127.0.0.1:8300  leader  true   3\n');
});

test('operator raft remove-peer and transfer-leader send the call and report Consul\'s lines and errors', async (t) => {
  const h = await startHarness(t);
  const removed = await cli(h, ['operator', 'raft', 'remove-peer', '-id=node-1-id']);
  t.deepEqual(removed, { code: 0, stdout: 'Removed peer with id "node-1-id"\n', stderr: '' });
  const unknown = await cli(h, ['operator', 'raft', 'remove-peer', '-address=10.9.9.9:8300']);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /^Error: Unexpected response code: 400 \(address "10\.9\.9\.9:8300" was not found/);
  t.is((await cli(h, ['operator', 'raft', 'remove-peer'])).stderr, 'Must specify either -id or -address\n');
  t.deepEqual(h.server.operatorCalls.map((c) => c.op), ['remove-peer', 'remove-peer']);
  const transfer = await cli(h, ['operator', 'raft', 'transfer-leader', '-id=x']);
  t.is(transfer.code, 1, 'the single-node stand-in has no one to transfer to');
  t.deepEqual(h.server.operatorCalls.at(-1), { op: 'transfer-leader', arg: 'x' });
  t.is((await cli(h, ['operator', 'raft'])).code, 1);
  t.is((await cli(h, ['operator'])).code, 1);
  const help = await cli(h, ['operator', 'raft', 'list-peers', '-h']);
  t.is(help.code, 0);
  t.regex(help.stdout, /^Usage: conclave operator raft list-peers/);
});

test('catalog datacenters lists one per line', async (t) => {
  const h = await startHarness(t);
  t.deepEqual(await cli(h, ['catalog', 'datacenters']), { code: 0, stdout: 'dc1\n', stderr: '' });
  t.is((await cli(h, ['catalog', 'bogus'])).code, 1, 'an unknown catalog subcommand');
});

test('members prints Consul\'s columns; -status filters by status', async (t) => {
  const h = await startHarness(t);
  const r = await cli(h, ['members']);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.regex(lines[0] ?? '', /^Node\s+Address\s+Status\s+Type\s+Build\s+Protocol\s+DC\s+Partition\s+Segment$/);
  t.regex(lines[1] ?? '', /^node-1\s+127\.0\.0\.1:8300\s+alive\s+server\s+0\.1\.0\s+2\s+dc1\s+default\s+<all>$/);
  t.is((await cli(h, ['members', '-status=failed'])).stdout, '');
  t.regex((await cli(h, ['members', '-status=('])).stderr, /^Failed to compile status regexp/);
  const json = (await h.request('GET', '/v1/agent/members')).json() as Array<Record<string, unknown>>;
  t.like(json[0], { Name: 'node-1', Status: 1, ProtocolCur: 2, Tags: { role: 'consul', dc: 'dc1' } });
});

test('columnize pads every column but the last with two spaces between', (t) => {
  t.deepEqual(columnize([['a', 'bb', 'c'], ['ddd', 'e', 'ffff']]), ['a    bb  c', 'ddd  e   ffff']);
});

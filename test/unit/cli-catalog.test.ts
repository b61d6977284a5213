// `conclave catalog nodes|services` through runCli against a stub agent (a node:http server answering
// canned JSON, recording each request): Consul's columns and lines, the request each flag sends, the
// "nothing matches" note with status 0, error lines with status 1, and the help texts.

import test, { type ExecutionContext } from 'ava';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { nodeLines, serviceLines, type NodeJson } from '../../src/cli/catalog.js';
import { runCliCaptured, type CliRun } from '../support/cli-run.js';

interface StubAgent {
  /** Method and request target of every request, in order. */
  readonly requests: string[];
  run(argv: string[]): Promise<CliRun>;
}

type Answers = Readonly<Record<string, { readonly status?: number; readonly json?: unknown; readonly text?: string }>>;

async function stubAgent(t: ExecutionContext, answers: Answers): Promise<StubAgent> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const path = (req.url ?? '').split('?')[0] ?? '';
    const a = answers[path];
    if (a === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Invalid URL path: not a recognized HTTP API endpoint\n');
      return;
    }
    if (a.text !== undefined) {
      res.writeHead(a.status ?? 200, { 'Content-Type': 'text/plain; charset=utf-8' }).end(a.text);
      return;
    }
    res.writeHead(a.status ?? 200, { 'Content-Type': 'application/json', 'X-Consul-Index': '7' }).end(JSON.stringify(a.json));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;
  return { requests, run: (argv) => runCliCaptured(['catalog', ...argv], { CONSUL_HTTP_ADDR: `127.0.0.1:${port}` }) };
}

const web1: NodeJson = { ID: '40e4a748-2192-161a-0510-9bf59fe950b5', Node: 'web-1', Address: '10.0.0.5', Datacenter: 'dc1', TaggedAddresses: { wan: '198.18.0.5', lan: '10.0.0.5' }, Meta: { rack: 'r1', env: 'prod' } };
const db: NodeJson = { ID: '', Node: 'db-long-name', Address: '10.0.0.10', Datacenter: 'dc1', TaggedAddresses: null, Meta: null };

test('nodeLines: Consul\'s columns, the ID cut at its first "-", -detailed with sorted key=value lists', (t) => {
  t.deepEqual(nodeLines([web1, db], false), [
    'Node          ID        Address    DC',
    'web-1         40e4a748  10.0.0.5   dc1',
    'db-long-name            10.0.0.10  dc1',
  ]);
  // TaggedAddresses is 28 wide ("lan=10.0.0.5, wan=198.18.0.5"); an empty cell is padded like any other.
  t.deepEqual(nodeLines([web1, db], true), [
    `Node          ID                                    Address    DC   TaggedAddresses${' '.repeat(13)}  Meta`,
    'web-1         40e4a748-2192-161a-0510-9bf59fe950b5  10.0.0.5   dc1  lan=10.0.0.5, wan=198.18.0.5  env=prod, rack=r1',
    `db-long-name                                        10.0.0.10  dc1  ${' '.repeat(28)}  `,
  ]);
  t.deepEqual(nodeLines([{ ...db, ID: 'abc' }, { ...db, ID: '-x-y' }, { ...db, ID: 'ab-cdefghijk' }], false).slice(1).map((l) => l.split(/\s+/)[1]), ['abc', '-x-y', 'ab'],
    'cut at the first "-" (not after 8 characters); an ID without a "-" after its first character is shown whole');
});

test('serviceLines: names in Go\'s order; -tags through Go\'s tabwriter, padding 6, trimmed', (t) => {
  const services = new Map<string, string[]>([['web', ['v2', 'v1']], ['db', []], ['cache-long-name', ['a']], ['Zeta', []]]);
  t.deepEqual(serviceLines(services, false), ['Zeta', 'cache-long-name', 'db', 'web'], 'upper case sorts first, as bytes do');
  t.deepEqual(serviceLines(services, true), [
    `Zeta${' '.repeat(17)}`,
    'cache-long-name      a',
    `db${' '.repeat(19)}`,
    'web                  v1,v2',
  ]);
  t.deepEqual(serviceLines(new Map([['only', []]]), true), ['only'], 'the last line loses its padding to the trim, as in Consul');
});

test('catalog nodes: the table from /v1/catalog/nodes; -stale and -datacenter reach the request', async (t) => {
  const a = await stubAgent(t, { '/v1/catalog/nodes': { json: [web1, db] } });
  const r = await a.run(['nodes']);
  t.deepEqual(r, { code: 0, stdout: `${nodeLines([web1, db], false).join('\n')}\n`, stderr: '' });
  t.is((await a.run(['nodes', '-detailed'])).stdout, `${nodeLines([web1, db], true).join('\n')}\n`);
  await a.run(['nodes', '-stale', '-datacenter=dc2']);
  t.deepEqual(a.requests, ['GET /v1/catalog/nodes', 'GET /v1/catalog/nodes', 'GET /v1/catalog/nodes?stale=&dc=dc2']);
});

test('catalog nodes -service: the nodes of /v1/catalog/service/<name>, NodeMeta as Meta', async (t) => {
  const instance = { ID: web1.ID, Node: 'web-1', Address: '10.0.0.5', Datacenter: 'dc1', TaggedAddresses: { lan: '10.0.0.5' }, NodeMeta: { rack: 'r1' }, ServiceID: 'web', ServiceName: 'web a' };
  const a = await stubAgent(t, { '/v1/catalog/service/web%20a': { json: [instance] } });
  const r = await a.run(['nodes', '-service=web a', '-detailed']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.trimEnd().split('\n')[1]?.split(/ {2,}/), ['web-1', web1.ID, '10.0.0.5', 'dc1', 'lan=10.0.0.5', 'rack=r1']);
  t.deepEqual(a.requests, ['GET /v1/catalog/service/web%20a']);
});

test('catalog nodes: nothing matching is a note on stderr with status 0; failures are Consul\'s lines with status 1', async (t) => {
  const a = await stubAgent(t, {
    '/v1/catalog/nodes': { json: [] },
    '/v1/catalog/service/web': { json: [] },
    '/v1/catalog/service/boom': { status: 500, text: 'No cluster leader' },
  });
  const note = 'No nodes match the given query - try expanding your search.\n';
  t.deepEqual(await a.run(['nodes']), { code: 0, stdout: '', stderr: note });
  t.deepEqual(await a.run(['nodes', '-service=web']), { code: 0, stdout: '', stderr: note });
  t.deepEqual(await a.run(['nodes', '-service=boom']), { code: 1, stdout: '', stderr: 'Error listing nodes for service: Unexpected response code: 500 (No cluster leader)\n' });
  const b = await stubAgent(t, { '/v1/catalog/nodes': { status: 500, text: 'No cluster leader' } });
  t.deepEqual(await b.run(['nodes']), { code: 1, stdout: '', stderr: 'Error listing nodes: Unexpected response code: 500 (No cluster leader)\n' });
  const extra = await a.run(['nodes', 'extra']);
  t.deepEqual(extra, { code: 1, stdout: '', stderr: 'Too many arguments (expected 0, got 1)\n' });
  const near = await a.run(['nodes', '-near=_agent']);
  t.is(near.code, 1);
  t.regex(near.stderr, /near/);
});

test('catalog services: names from /v1/catalog/services, -tags beside them; -node reads /v1/catalog/node/<node>', async (t) => {
  const a = await stubAgent(t, {
    '/v1/catalog/services': { json: { web: ['v2', 'v1'], consul: [], db: null } },
    '/v1/catalog/node/web-1': { json: { Node: { Node: 'web-1' }, Services: { 'web-a': { Service: 'web', Tags: ['b'] }, 'web-b': { Service: 'web', Tags: ['a', 'b'] }, redis: { Service: 'redis', Tags: null } } } },
    '/v1/catalog/node/ghost': { json: null },
  });
  t.deepEqual(await a.run(['services']), { code: 0, stdout: 'consul\ndb\nweb\n', stderr: '' });
  t.deepEqual(await a.run(['services', '-tags']), { code: 0, stdout: `consul${' '.repeat(6)}\ndb${' '.repeat(10)}\nweb         v1,v2\n`, stderr: '' });
  t.deepEqual(await a.run(['services', '-node=web-1', '-tags']), { code: 0, stdout: `redis${' '.repeat(6)}\nweb${' '.repeat(8)}a,b,b\n`, stderr: '' },
    'instances of one service pool their tags, as Consul does');
  t.deepEqual(await a.run(['services', '-node=ghost']), { code: 0, stdout: '', stderr: 'No services match the given query - try expanding your search.\n' });
  await a.run(['services', '-stale']);
  t.deepEqual(a.requests, ['GET /v1/catalog/services', 'GET /v1/catalog/services', 'GET /v1/catalog/node/web-1', 'GET /v1/catalog/node/ghost', 'GET /v1/catalog/services?stale=']);
  const b = await stubAgent(t, { '/v1/catalog/services': { json: {} }, '/v1/catalog/node/x': { status: 403, text: 'Permission denied' } });
  t.deepEqual(await b.run(['services']), { code: 0, stdout: '', stderr: 'No services match the given query - try expanding your search.\n' });
  t.deepEqual(await b.run(['services', '-node=x']), { code: 1, stdout: '', stderr: 'Error listing services for node: Unexpected response code: 403 (Permission denied)\n' });
});

test('catalog: help lists the subcommands; each subcommand has its usage; datacenters still works', async (t) => {
  const a = await stubAgent(t, { '/v1/catalog/datacenters': { json: ['dc1', 'dc2'] } });
  const help = await a.run(['-h']);
  t.is(help.code, 0);
  t.regex(help.stdout, /^Usage: conclave catalog <subcommand>/);
  t.regex(help.stdout, /\n {4}datacenters {4}Lists all known datacenters\n {4}nodes {10}Lists all nodes in the given datacenter\n {4}services {7}Lists all registered services in a datacenter\n$/);
  const none = await a.run([]);
  t.is(none.code, 1);
  t.is(none.stderr, help.stdout);
  const nodesHelp = await a.run(['nodes', '-h']);
  t.is(nodesHelp.code, 0);
  t.regex(nodesHelp.stdout, /^Usage: conclave catalog nodes \[options\]/);
  t.regex(nodesHelp.stdout, /-detailed/);
  t.regex(nodesHelp.stdout, /-service=<name>/);
  const servicesHelp = await a.run(['services', '--help']);
  t.is(servicesHelp.code, 0);
  t.regex(servicesHelp.stdout, /^Usage: conclave catalog services \[options\]/);
  t.regex(servicesHelp.stdout, /-tags/);
  t.regex(servicesHelp.stdout, /-node=<name>/);
  const unknown = await a.run(['tables']);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /^Unknown subcommand: "tables" \(subcommands: datacenters, nodes, services\)/);
  t.deepEqual(await a.run(['datacenters']), { code: 0, stdout: 'dc1\ndc2\n', stderr: '' });
  t.deepEqual(a.requests, ['GET /v1/catalog/datacenters'], 'help and usage errors send nothing');
});

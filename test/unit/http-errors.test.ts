// The one table from a server error's code to its HTTP answer (src/http/errors.ts), checked as a table
// and through the real HTTP server: every ServerError code gets Consul's status, and Consul's fixed
// text where it has one.

import test from 'ava';
import { serverErrorReplies } from '../../src/http/errors.js';
import { ServerError, type ServerErrorCode } from '../../src/server/api.js';
import { startHarness } from '../support/http-harness.js';

const expected: Record<ServerErrorCode, [number, string]> = {
  'no-leader': [500, 'No cluster leader'],
  'unknown-outcome': [500, 'the message'],
  'aborted-by-restore': [500, 'the message'],
  'bad-request': [400, 'the message'],
  'not-found': [404, 'the message'],
  unavailable: [503, 'the message'],
  'permission-denied': [403, 'the message'],
  'acl-not-found': [403, 'ACL not found'],
  'no-path-to-dc': [400, 'No path to datacenter'],
  internal: [500, 'the message'],
};

test('the status table covers every ServerError code with Consul\'s status', (t) => {
  t.deepEqual(Object.keys(serverErrorReplies).sort(), Object.keys(expected).sort());
  for (const [code, [status]] of Object.entries(expected)) t.is(serverErrorReplies[code as ServerErrorCode].status, status, code);
});

test('every ServerError code is answered from the table, reads and writes alike', async (t) => {
  const h = await startHarness(t);
  let failWith: ServerErrorCode = 'internal';
  h.server.kvGet = async () => {
    throw new ServerError(failWith, 'the message');
  };
  h.server.apply = async () => {
    throw new ServerError(failWith, 'the message');
  };
  for (const [code, [status, body]] of Object.entries(expected)) {
    failWith = code as ServerErrorCode;
    for (const [method, path] of [['GET', '/v1/kv/k'], ['PUT', '/v1/kv/k']] as const) {
      const r = await h.request(method, path, method === 'PUT' ? { body: 'v' } : {});
      t.is(r.status, status, `${code}: ${method}`);
      t.is(r.text, body, `${code}: ${method}`);
      t.regex(String(r.headers['content-type']), /^text\/plain/);
    }
  }
});

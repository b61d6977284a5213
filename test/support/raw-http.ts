// A raw HTTP/1.1 client for wire-level tests: writes exactly the bytes given, in one write (so several
// requests arrive pipelined, in one packet), and parses the answers that come back in order.
import { connect } from 'node:net';

export interface RawAnswer {
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface RawExchange {
  readonly answers: readonly RawAnswer[];
  /** Whether the server closed the connection (rather than the exchange ending once `expect` answers came). */
  readonly closedByServer: boolean;
  /** Everything received, unparsed. */
  readonly raw: string;
}

/**
 * Sends `bytes` in one write on a fresh connection and collects answers until `expect` of them are
 * complete and the server then sends nothing for `settleMs` (unless the last one says Connection: close),
 * or the server closes, or `timeoutMs` passes.
 */
export function rawExchange(port: number, bytes: string, expect: number, o: { settleMs?: number; timeoutMs?: number } = {}): Promise<RawExchange> {
  const settleMs = o.settleMs ?? 50;
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let raw = '';
    let done = false;
    let settle: NodeJS.Timeout | undefined;
    const finish = (closedByServer: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(settle);
      clearTimeout(overall);
      socket.destroy();
      try {
        resolve({ answers: parseAnswers(raw), closedByServer, raw });
      } catch (error) {
        reject(error instanceof Error ? new Error(`${error.message} in ${JSON.stringify(raw)}`) : error);
      }
    };
    const overall = setTimeout(() => finish(false), o.timeoutMs ?? 20_000);
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write(Buffer.from(bytes, 'latin1')));
    socket.on('data', (d: string) => {
      raw += d;
      clearTimeout(settle);
      let parsed: RawAnswer[] = [];
      try {
        parsed = parseAnswers(raw);
      } catch {
        parsed = []; // incomplete so far
      }
      // An answer that announces the close: wait for it (a busy event loop may run an expired timer
      // before it reads the FIN that came with the bytes).
      if (parsed.length >= expect && parsed.at(-1)?.headers['connection'] !== 'close') {
        settle = setTimeout(() => finish(false), settleMs);
      }
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', (e) => (done ? undefined : reject(e)));
  });
}

/** Parses consecutive responses (each with a Content-Length; 1xx answers skipped); throws on a partial one. */
export function parseAnswers(raw: string): RawAnswer[] {
  const answers: RawAnswer[] = [];
  let at = 0;
  while (at < raw.length) {
    const headEnd = raw.indexOf('\r\n\r\n', at);
    if (headEnd === -1) throw new Error('a partial response head');
    const [statusLine = '', ...lines] = raw.slice(at, headEnd).split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
    if (m === null) throw new Error(`not a status line: ${JSON.stringify(statusLine)}`);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const status = Number(m[1]);
    const length = Number(headers['content-length'] ?? 0);
    const bodyStart = headEnd + 4;
    if (raw.length < bodyStart + length) throw new Error('a partial response body');
    if (status >= 200) answers.push({ status, headers, body: Buffer.from(raw.slice(bodyStart, bodyStart + length), 'latin1').toString('utf8') });
    at = bodyStart + length;
  }
  return answers;
}

/** One request's bytes: `method target HTTP/1.1`, a Host, and a Content-Length when there is a body. */
export function rawRequest(method: string, target: string, body?: string): string {
  const head = `${method} ${target} HTTP/1.1\r\nHost: conclave.test\r\n`;
  return body === undefined ? `${head}\r\n` : `${head}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

// Progress of a snapshot transfer, on stderr only: stdout carries Consul's lines, which scripts parse.
//
// - On a terminal: one redrawn line from cli-progress (a bar when the total is known, bytes and rate
//   when it is not, as for a streamed save), left on screen when done.
// - Otherwise (a pipe, a file, a CI log): a plain line at most every `intervalMs` (5 s) while the transfer
//   runs, and one line at the end, e.g. `Saving snapshot: 12.3 MB received (45.6 MB/s)`. A transfer that
//   ends within the interval prints only the final line. A failure prints no final line: the error does.

import cliProgress from 'cli-progress';
import { humanBytes } from './format.js';
import type { TextOutput } from '../agent.js';

export interface Progress {
  /** The number of bytes moved so far (not a delta). */
  update(bytes: number): void;
  /** Ends the display: the final line after a success; after a failure nothing more (the error says it). */
  finish(ok: boolean): void;
}

export interface ProgressOptions {
  /** "Saving snapshot", "Restoring snapshot", "Verifying snapshot". */
  readonly label: string;
  /** "received", "sent", "read". */
  readonly verb: string;
  readonly total?: number | undefined;
  /** stderr when it is a terminal; undefined otherwise. */
  readonly terminal?: NodeJS.WriteStream | undefined;
  readonly stderr: TextOutput;
  readonly now?: () => number;
  readonly intervalMs?: number;
}

export function createProgress(opts: ProgressOptions): Progress {
  return opts.terminal !== undefined ? new TerminalProgress(opts, opts.terminal) : new LineProgress(opts);
}

/** A progress that shows nothing (inspect and decode of small files, tests). */
export const noProgress: Progress = { update() {}, finish() {} };

function rate(bytes: number, ms: number): string {
  return `${humanBytes(ms <= 0 ? 0 : (bytes * 1000) / ms)}/s`;
}

class LineProgress implements Progress {
  private readonly now: () => number;
  private readonly start: number;
  private lastLine: number;
  private bytes = 0;
  private done = false;

  constructor(private readonly opts: ProgressOptions) {
    this.now = opts.now ?? Date.now;
    this.start = this.now();
    this.lastLine = this.start;
  }

  update(bytes: number): void {
    this.bytes = bytes;
    const t = this.now();
    if (t - this.lastLine < (this.opts.intervalMs ?? 5000)) return;
    this.lastLine = t;
    const of = this.opts.total === undefined ? '' : ` of ${humanBytes(this.opts.total)}`;
    this.opts.stderr.write(`${this.opts.label}: ${humanBytes(bytes)}${of} ${this.opts.verb} (${rate(bytes, t - this.start)})\n`);
  }

  finish(ok: boolean): void {
    if (this.done) return;
    this.done = true;
    if (!ok) return; // the error line that follows says what happened
    const ms = this.now() - this.start;
    this.opts.stderr.write(`${this.opts.label}: ${humanBytes(this.bytes)} ${this.opts.verb} in ${(ms / 1000).toFixed(1)} s (${rate(this.bytes, ms)})\n`);
  }
}

class TerminalProgress implements Progress {
  private readonly bar: cliProgress.SingleBar;
  private readonly now: () => number;
  private readonly start: number;
  private done = false;

  constructor(
    private readonly opts: ProgressOptions,
    terminal: NodeJS.WriteStream,
  ) {
    this.now = opts.now ?? Date.now;
    this.start = this.now();
    const known = opts.total !== undefined && opts.total > 0;
    this.bar = new cliProgress.SingleBar({
      stream: terminal,
      format: known ? `${opts.label} [{bar}] {percentage}% | {moved} of {all} | {rate}` : `${opts.label}: {moved} ${opts.verb} | {rate}`,
      barsize: 30,
      fps: 5,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      barCompleteChar: '=',
      barIncompleteChar: ' ',
    });
    this.bar.start(known ? opts.total! : 1, 0, this.payload(0));
  }

  private payload(bytes: number): Record<string, string> {
    return { moved: humanBytes(bytes), all: humanBytes(this.opts.total ?? 0), rate: rate(bytes, this.now() - this.start) };
  }

  update(bytes: number): void {
    const known = this.opts.total !== undefined && this.opts.total > 0;
    this.bar.update(known ? bytes : 0, this.payload(bytes));
  }

  finish(): void {
    if (this.done) return;
    this.done = true;
    this.bar.stop();
  }
}

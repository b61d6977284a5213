// The client history of a chaos run: every operation a worker invoked, when, and how it ended. The
// linearizability checker (checker.ts) reads it; the recorder below is what the workload writes it with.
//
// An operation ends one of three ways, as in Jepsen:
//   ok    it took effect (or, for a read or a cas/acquire/release that answered false, was observed)
//         and `output` is what the server answered;
//   fail  it definitely did not take effect (the server refused it before anything was applied);
//   info  the outcome is unknown (a timeout, a dropped connection, "leadership lost"): it may take
//         effect at any time after its call, or never. An operation that never completes is `info` too.
//
// A cas or an acquire that the server answered with `false` is `ok` with output false, not `fail`:
// the answer is an observation the checker must explain.

/** The whole state a restore puts in place: the snapshot's registers and lock holders. */
export interface SnapshotState {
  /** Register keys; a key absent here (or null) is absent after the restore. */
  readonly kv: Readonly<Record<string, string | null>>;
  /** Lock keys -> the holding session, or null (or absent) when free. */
  readonly locks: Readonly<Record<string, string | null>>;
}

/** cas as the workload does it: set `to` if the value is still `from` (null: the key is absent). */
export interface CasInput {
  readonly from: string | null;
  readonly to: string;
}

/** What the worker asked for. `write` of null deletes the key. Lock holders are session ids. */
export type OpCall =
  | { readonly kind: 'read'; readonly key: string; readonly input: null }
  | { readonly kind: 'write'; readonly key: string; readonly input: string | null }
  | { readonly kind: 'cas'; readonly key: string; readonly input: CasInput }
  | { readonly kind: 'acquire'; readonly key: string; readonly input: string }
  | { readonly kind: 'release'; readonly key: string; readonly input: string }
  | { readonly kind: 'restore'; readonly key: ''; readonly input: SnapshotState };

export type OpKind = OpCall['kind'];

/** What the server answered, by kind: a read's value (null: absent), a cas/acquire/release's success. */
export interface OpOutputs {
  read: string | null;
  write: null;
  cas: boolean;
  acquire: boolean;
  release: boolean;
  restore: null;
}

export type OpStatus = 'ok' | 'fail' | 'info';

interface OpTiming {
  /** Unique within the history; the recorder numbers operations in invocation order. */
  readonly id: number;
  /** The worker that invoked it (its label in the timeline). */
  readonly process: string;
  /** performance.now() at invocation, in ms. */
  readonly call: number;
  /** performance.now() at completion, in ms; undefined for `info`: its effect may land any time later. */
  readonly ret: number | undefined;
  /** For `info` only: when the worker stopped waiting. Shown in the timeline, never used for checking. */
  readonly gaveUpAt?: number;
  readonly status: OpStatus;
}

/** One operation, its call and its outcome. `output` is set exactly when status is 'ok'. */
export type Operation = {
  [K in OpKind]: OpTiming & Extract<OpCall, { kind: K }> & { readonly output: OpOutputs[K] | undefined };
}[OpKind];

/** An invoked operation, completed exactly once by one of its three methods. */
export interface PendingOp<K extends OpKind> {
  readonly id: number;
  ok(output: OpOutputs[K]): void;
  fail(): void;
  info(): void;
}

type Ending = { status: OpStatus; ret: number | undefined; gaveUpAt: number | undefined; output: unknown };

/**
 * Records a history as the workers run. Workers share one recorder; JavaScript runs them one at a
 * time, so no locking is needed. Times come from performance.now(), which is monotonic.
 */
export class HistoryRecorder {
  private readonly calls: Array<{ id: number; process: string; call: number; op: OpCall }> = [];
  private readonly endings = new Map<number, Ending>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  invoke<C extends OpCall>(process: string, op: C): PendingOp<C['kind']> {
    const id = this.calls.length;
    // A restore's state is copied so that a workload reusing its object cannot rewrite the record.
    const kept = op.kind === 'restore' ? { ...op, input: structuredClone(op.input) } : op;
    this.calls.push({ id, process, call: this.now(), op: kept });
    const end = (e: Ending): void => {
      if (this.endings.has(id)) throw new Error(`history: operation #${id} completed twice`);
      this.endings.set(id, e);
    };
    return {
      id,
      ok: (output) => end({ status: 'ok', ret: this.now(), gaveUpAt: undefined, output }),
      fail: () => end({ status: 'fail', ret: this.now(), gaveUpAt: undefined, output: undefined }),
      info: () => end({ status: 'info', ret: undefined, gaveUpAt: this.now(), output: undefined }),
    };
  }

  /** Operations invoked so far that have not completed. */
  pending(): number {
    return this.calls.length - this.endings.size;
  }

  /** The history so far, in invocation order; an operation still pending is indeterminate ('info'). */
  history(): Operation[] {
    return this.calls.map(({ id, process, call, op }) => {
      const e = this.endings.get(id) ?? { status: 'info', ret: undefined, gaveUpAt: undefined, output: undefined };
      const timing = { id, process, call, ret: e.ret, status: e.status, ...(e.gaveUpAt === undefined ? {} : { gaveUpAt: e.gaveUpAt }) };
      // The cast joins a call with the output its own PendingOp<K> typed; invoke() keeps them paired.
      return { ...timing, ...op, output: e.output } as Operation;
    });
  }
}

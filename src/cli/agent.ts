// `conclave agent`: load the configuration, set up logging, start the server, and shut it down
// cleanly on SIGINT or SIGTERM. Everything the command touches outside itself comes in through
// AgentCommandDeps, so tests drive it with a fake server and fake signals; src/cli/agent-command.ts
// supplies the real server.
//
// Shutdown follows Consul's agent command: the first signal closes the agent (exit 0 once closed);
// a second signal exits at once with status 1; a close that takes longer than `shutdownTimeoutMs`
// (Consul's 15 s graceful timeout) exits with 1.
//
// `-dev` without a data_dir runs in a temporary directory the configuration loader made; this command
// owns it and removes it whenever it ends: after a clean shutdown, a failed start, an agent that
// stopped on an error, and (synchronously, just before exiting) on a second signal. A data_dir that
// was given is never removed.
//
// The ACL token in the configuration is a secret: what is printed or logged is `redactConfig(config)`.

import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import { conclaveVersion } from '../base/index.js';
import { loadAgentConfig, redactConfig, type AgentConfig } from '../config/index.js';
import { exitCodes } from './exit-codes.js';
import { createAgentLogger, type AgentLogger } from './logger.js';

/** What src/agent provides (its `Agent`), as far as the command relies on it. */
export interface RunningAgent {
  /** The HTTP API's address, "host:port", with the real port when ports.http was 0. */
  readonly httpAddress: string;
  /** The server RPC address other servers use, "host:port". */
  readonly serverAddress: string;
  /** Settles when the agent has stopped, whoever stopped it; rejects if it stopped on an error. */
  readonly closed: Promise<void>;
  /** Stops the agent; resolves once it has stopped. */
  close(): Promise<void>;
}

export type StartAgent = (config: AgentConfig, logger: Logger) => Promise<RunningAgent>;

export type ShutdownSignal = 'SIGINT' | 'SIGTERM';

/** The part of `process` the command listens on. */
export interface SignalSource {
  on(signal: ShutdownSignal | 'SIGHUP', listener: () => void): unknown;
  off(signal: ShutdownSignal | 'SIGHUP', listener: () => void): unknown;
}

export interface TextOutput {
  write(text: string): unknown;
}

export interface AgentCommandDeps {
  readonly stdout: TextOutput;
  readonly stderr: TextOutput;
  readonly stdoutIsTty: boolean;
  /** Loads the server module; called only after the configuration is valid. */
  readonly loadStartAgent: () => Promise<StartAgent>;
  readonly signals: SignalSource;
  /** Ends the process at once: used for the second signal, which must not wait for anything. */
  readonly exitNow: (code: number) => void;
  /** Default: pino to stdout (src/cli/logger.ts). */
  readonly createLogger?: (config: AgentConfig, stdoutIsTty: boolean) => Promise<AgentLogger>;
  /** Default 15,000 (Consul's graceful shutdown timeout). */
  readonly shutdownTimeoutMs?: number;
}

/** Runs `conclave agent <argv>` and resolves with the exit status once the agent has stopped. */
export async function runAgentCommand(argv: readonly string[], deps: AgentCommandDeps): Promise<number> {
  const loaded = await loadAgentConfig(argv);
  if (!loaded.ok) {
    deps.stderr.write(errorLines(loaded.message));
    return exitCodes.error;
  }
  const config = loaded.config;
  const temporary = config.dataDirIsTemporary ? new TemporaryDataDir(config.dataDir) : undefined;
  let logger: Logger | undefined;
  try {
    const created = await (deps.createLogger ?? createAgentLogger)(config, deps.stdoutIsTty);
    logger = created.logger;
    const json = created.json;
    if (!json) deps.stdout.write(banner(config));
    // The banner already shows the configuration to a person; JSON readers get it in the first line.
    logger[json ? 'info' : 'debug']({ version: conclaveVersion(), config: redactConfig(config) }, 'starting Conclave agent');
    if (config.dev) {
      const where = config.dataDirIsTemporary ? `data in ${config.dataDir} (temporary: removed when the agent stops)` : `data in ${config.dataDir} (kept)`;
      logger.info({ dev: true, dataDir: config.dataDir, dataDirIsTemporary: config.dataDirIsTemporary }, `running in dev mode: ${where}`);
    }
    for (const warning of config.warnings) logger.warn(warning);

    // A second signal exits at once; the temporary directory goes first, synchronously.
    const exitNow = (code: number): void => {
      temporary?.removeNow(logger);
      deps.exitNow(code);
    };
    const shutdown = new ShutdownSignals({ ...deps, exitNow }, logger);
    try {
      return await startAndServe(config, logger, json, deps, shutdown);
    } finally {
      shutdown.detach();
    }
  } finally {
    await temporary?.remove(logger);
  }
}

/** -dev's temporary data directory, removed once whatever happens. */
class TemporaryDataDir {
  private removed = false;

  constructor(readonly path: string) {}

  async remove(logger: Logger | undefined): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    try {
      await rm(this.path, { recursive: true, force: true });
      logger?.info({ dataDir: this.path }, 'removed the temporary data directory of dev mode');
    } catch (err) {
      logger?.warn({ dataDir: this.path, err }, 'could not remove the temporary data directory of dev mode; remove it by hand');
    }
  }

  removeNow(logger: Logger | undefined): void {
    if (this.removed) return;
    this.removed = true;
    try {
      rmSync(this.path, { recursive: true, force: true });
    } catch (err) {
      logger?.warn({ dataDir: this.path, err }, 'could not remove the temporary data directory of dev mode; remove it by hand');
    }
  }
}

async function startAndServe(config: AgentConfig, logger: Logger, json: boolean, deps: AgentCommandDeps, shutdown: ShutdownSignals): Promise<number> {
  let startAgent: StartAgent;
  try {
    startAgent = await deps.loadStartAgent();
  } catch (err) {
    logger.error({ err }, 'cannot load the server module (src/agent); nothing was started');
    return exitCodes.error;
  }
  let agent: RunningAgent;
  try {
    agent = await startAgent(config, logger);
  } catch (err) {
    logger.error({ err }, 'Error starting agent');
    return exitCodes.error;
  }
  // The agent logs its own "running" line with both addresses; the banner gets Consul's closing line.
  if (!json) deps.stdout.write(`==> Conclave agent running! HTTP API on http://${agent.httpAddress}\n`);

  // A signal during startAgent was recorded; act on it now that there is an agent to close.
  const stopped = agent.closed.then(
    () => 'stopped' as const,
    (err: unknown) => ({ err }),
  );
  const outcome = await Promise.race([stopped, shutdown.requested]);
  if (outcome === 'stopped') {
    logger.info('agent stopped');
    return exitCodes.ok;
  }
  if (typeof outcome === 'object') {
    logger.error({ err: outcome.err }, 'agent stopped on an error');
    return exitCodes.error;
  }
  return closeAgent(agent, logger, deps.shutdownTimeoutMs ?? 15_000);
}

async function closeAgent(agent: RunningAgent, logger: Logger, timeoutMs: number): Promise<number> {
  logger.info('Gracefully shutting down agent...');
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    const result = await Promise.race([agent.close().then(() => 'closed' as const), timeout]);
    if (result === 'timeout') {
      logger.error({ timeoutMs }, 'Timeout on graceful shutdown. Exiting');
      return exitCodes.error;
    }
    logger.info('Graceful exit completed');
    return exitCodes.ok;
  } catch (err) {
    logger.error({ err }, 'Error closing agent');
    return exitCodes.error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * SIGINT/SIGTERM: the first requests shutdown, the second exits at once with 1. SIGHUP makes Consul
 * reload its configuration; Conclave cannot reload, and Node's default for SIGHUP would kill the
 * agent without a clean shutdown (a closed terminal sends it), so it is logged and ignored.
 */
class ShutdownSignals {
  readonly requested: Promise<ShutdownSignal>;
  private resolveRequested!: (signal: ShutdownSignal) => void;
  private received: ShutdownSignal | undefined;
  private readonly listeners: ReadonlyArray<readonly [ShutdownSignal | 'SIGHUP', () => void]>;

  constructor(
    private readonly deps: AgentCommandDeps,
    private readonly logger: Logger,
  ) {
    this.requested = new Promise((resolve) => {
      this.resolveRequested = resolve;
    });
    this.listeners = [
      ...(['SIGINT', 'SIGTERM'] as const).map((signal) => [signal, () => this.onSignal(signal)] as const),
      ['SIGHUP', () => this.logger.warn({ signal: 'SIGHUP' }, 'SIGHUP ignored: Conclave cannot reload its configuration; restart the agent to apply changes')] as const,
    ];
    for (const [signal, listener] of this.listeners) deps.signals.on(signal, listener);
  }

  detach(): void {
    for (const [signal, listener] of this.listeners) this.deps.signals.off(signal, listener);
  }

  private onSignal(signal: ShutdownSignal): void {
    if (this.received !== undefined) {
      this.logger.warn({ signal }, 'Caught second signal, Exiting');
      this.deps.exitNow(exitCodes.error);
      return;
    }
    this.received = signal;
    this.logger.info({ signal }, 'Caught signal');
    this.resolveRequested(signal);
  }
}

/** Consul's start banner (command/agent/agent.go), printed when logs are human-readable. */
function banner(config: AgentConfig): string {
  const acl = config.acl;
  const aclText = acl.enabled
    ? `enabled (default policy: ${acl.defaultPolicy}; initial management token: ${acl.initialManagementToken === undefined ? 'none' : 'set, <hidden>'})`
    : 'disabled';
  const lines = [
    '==> Starting Conclave agent...',
    `           Version: '${conclaveVersion()}'`,
    `         Node name: '${config.nodeName}'`,
    `        Datacenter: '${config.datacenter}'`,
    `            Server: true (Bootstrap expect: ${config.bootstrapExpect})`,
    `       Client Addr: [${config.httpHost}] (HTTP: ${config.httpPort})`,
    `      Cluster Addr: ${config.serverAdvertiseHost} (Server RPC: ${config.serverPort}, bound on ${config.serverBindHost})`,
    `        Retry join: ${config.retryJoin.length === 0 ? '(none)' : config.retryJoin.join(', ')}`,
    `    Retry join WAN: ${config.retryJoinWan.length === 0 ? '(none)' : config.retryJoinWan.join(', ')}`,
    `          Data dir: ${config.dataDir}${config.dataDirIsTemporary ? ' (temporary, removed when the agent stops)' : ''}`,
    ...(config.dev ? ['          Dev mode: true (nothing is kept; never use it in production)'] : []),
    `               ACL: ${aclText}`,
    `              Raft: tick ${config.raft.tickMs} ms, election timeout ${ticks(config.raft.electionTimeoutTicks)}, heartbeat ${ticks(config.raft.heartbeatIntervalTicks)}`,
    '',
    '==> Log data will now stream in as it occurs:',
    '',
  ];
  return `${lines.join('\n')}\n`;
}

function ticks(n: number): string {
  return n === 1 ? '1 tick' : `${n} ticks`;
}

/** Each line of a message prefixed like Consul's agent errors (`==> `). */
export function errorLines(message: string): string {
  return `${message
    .split('\n')
    .map((line) => `==> ${line}`)
    .join('\n')}\n`;
}

// The agent's logger: pino, writing synchronously to stdout so nothing is lost when the process exits
// right after a line. JSON lines by default; human-readable lines (pino-pretty) when stdout is a
// terminal or log_json is false. pino-pretty is loaded only then, and if it is not installed the agent
// still runs, with JSON lines and a warning saying why.

import { pino, type Logger } from 'pino';
import type { AgentConfig } from '../config/index.js';

export interface AgentLogger {
  readonly logger: Logger;
  /** True when lines are JSON (the start banner is then left out, as Consul does with -log-json). */
  readonly json: boolean;
}

export async function createAgentLogger(config: AgentConfig, stdoutIsTty: boolean): Promise<AgentLogger> {
  const wantJson = config.logJson ?? !stdoutIsTty;
  const options = {
    level: config.logLevel,
    // A second guard for the one secret in the configuration: callers log redactConfig(config), and
    // should one ever log the configuration itself, pino hides the token anyway.
    redact: { paths: ['config.acl.initialManagementToken', 'acl.initialManagementToken', 'initialManagementToken'], censor: '<hidden>' },
    base: { node: config.nodeName },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (!wantJson) {
    try {
      const { default: pretty } = await import('pino-pretty');
      // colorize is left to pino-pretty: on when stdout is a colour terminal or FORCE_COLOR is set.
      // singleLine keeps one log record on one line, which reads well and survives line prefixing.
      const stream = pretty({ destination: 1, sync: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,node' });
      return { logger: pino(options, stream), json: false };
    } catch (err) {
      const logger = jsonLogger(options);
      logger.warn({ err }, 'human-readable logs need the pino-pretty package, which is not installed; writing JSON lines');
      return { logger, json: true };
    }
  }
  return { logger: jsonLogger(options), json: true };
}

function jsonLogger(options: pino.LoggerOptions): Logger {
  // Level names instead of numbers: `"level":"info"` reads without a lookup table.
  return pino({ ...options, formatters: { level: (label) => ({ level: label }) } }, pino.destination({ dest: 1, sync: true }));
}

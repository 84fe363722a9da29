/**
 * Operational event log: one JSON object per line on stderr (stdout is kept for access logs), levels from
 * `--log-level`.
 */
import winston from 'winston';

export type Logger = winston.Logger;

export function createLogger(level = 'info', component = 'edgegate'): Logger {
  return winston.createLogger({
    level,
    defaultMeta: { component },
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [
      new winston.transports.Console({
        stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'],
      }),
    ],
  });
}

/** A logger that drops everything (tests, `routes` command). */
export function silentLogger(): Logger {
  return winston.createLogger({
    silent: true,
    transports: [new winston.transports.Console({ silent: true })],
  });
}

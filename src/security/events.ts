// Security events: one typed hook that the password grant, the login guard
// and the refresh-token store emit on. Every event is logged here (outcome
// codes and identifiers, never a username, password or token); audit events
// and metrics subscribe to the same bus.
import { EventEmitter } from 'node:events';
import type { Logger } from '../observability/log.ts';
import type { Metrics } from '../observability/metrics.ts';

type Source = { clientId: string; ip: string };

export type SecurityEventMap = {
  /** Every password login attempt ends in exactly one of these five. */
  'login.succeeded': [Source & { accountId: string }];
  'login.failed': [Source];
  /** Account (username + IP, or username) throttled: answered like a failure. */
  'login.throttled': [Source & { scope: 'account_ip' | 'account'; retryAfterSeconds: number }];
  /** Too many failures from one IP: 429. */
  'login.rate_limited': [Source & { retryAfterSeconds: number }];
  /** Too many password hashes in flight: 503. */
  'login.shed': [Source];
  /** Redis or Postgres unreachable: 503. */
  'login.unavailable': [Source];
  /** The failure rate across all accounts crossed the alert threshold (password spraying). */
  'login.spraying_suspected': [{ failuresPerMinute: number }];
  /** POST /register or /password/forgot refused with 429: the source's or the email address's budget is spent. */
  'self_service.rate_limited': [{ route: 'register' | 'forgot'; scope: 'ip' | 'email'; ip: string; retryAfterSeconds: number }];
  /** A trusted-gateway header sent by a client that is not a trusted gateway. */
  'gateway.forwarded_ip_ignored': [{ clientId: string }];
  /** A rotated refresh token presented again: its whole grant is revoked. */
  'refresh.reuse': [
    {
      clientId: string | undefined;
      grantId: string | undefined;
      accountId: string | undefined;
      /** sequential: found already consumed; concurrent: lost the atomic consume to a parallel request. */
      detectedBy: 'sequential' | 'concurrent';
    },
  ];
  /** The immediate predecessor presented again within the grace window: same response replayed. */
  'refresh.grace_replay': [{ clientId: string; grantId: string | undefined }];
};

export type SecurityEventName = keyof SecurityEventMap;

export class SecurityEvents extends EventEmitter<SecurityEventMap> {}

/** A bus whose every event is logged (see logSecurityEvents). */
export function createSecurityEvents(logger: Logger): SecurityEvents {
  const events = new SecurityEvents();
  logSecurityEvents(events, logger);
  return events;
}

// Every event name with its log level; a missing name is a type error.
const LEVEL: Record<SecurityEventName, 'info' | 'warn'> = {
  'login.succeeded': 'info',
  'login.failed': 'info',
  'login.throttled': 'warn',
  'login.rate_limited': 'warn',
  'login.shed': 'warn',
  'login.unavailable': 'warn',
  'login.spraying_suspected': 'warn',
  'self_service.rate_limited': 'warn',
  'gateway.forwarded_ip_ignored': 'warn',
  'refresh.reuse': 'warn',
  'refresh.grace_replay': 'info',
};

export const SECURITY_EVENT_NAMES = Object.keys(LEVEL) as SecurityEventName[];

/** Logs every security event as one line: `{event, outcome, ...ids}`. */
export function logSecurityEvents(events: SecurityEvents, logger: Logger): void {
  for (const name of SECURITY_EVENT_NAMES) {
    events.on(name, (detail: object) => {
      const line = { event: 'security', outcome: name, ...detail };
      logger[LEVEL[name]](line, name);
    });
  }
}

/** Rate-limit blocks and shed logins, counted from the same events. */
export function countSecurityEvents(events: SecurityEvents, metrics: Metrics): void {
  events.on('login.throttled', ({ scope }) => metrics.rateLimitBlocks.inc({ limiter: scope }));
  events.on('login.rate_limited', () => metrics.rateLimitBlocks.inc({ limiter: 'ip' }));
  events.on('self_service.rate_limited', ({ route, scope }) => metrics.rateLimitBlocks.inc({ limiter: `${route}_${scope}` }));
  events.on('login.shed', () => metrics.passwordHashesShed.inc());
  events.on('refresh.reuse', ({ detectedBy }) => metrics.refreshReuse.inc({ detected_by: detectedBy }));
}

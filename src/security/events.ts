// Security events: one typed hook that the login guard, client
// authentication, the password grant and the refresh-token store emit on.
// Every event is logged here (outcome codes and identifiers, never a
// username, password or token) and counted in metrics; audit events
// subscribe to the same bus. Refusals an attacker can trigger at request
// rate (shed, rate-limited, ignored headers, failed client authentication)
// are logged at most once per event name every 10 s, with the number of
// lines left out; the metrics count every one.
import { EventEmitter } from 'node:events';
import type { Logger } from '../observability/log.ts';
import type { Metrics } from '../observability/metrics.ts';

/** Which door a secret was tried at: the password grant, the current password before a change, a second factor. */
export type LoginVia = 'token' | 'password_change' | 'mfa';

/** clientId: null when the request had no authenticated client (yet). */
type Source = { clientId: string | null; ip: string; via: LoginVia };

export type SecurityEventMap = {
  /** Every password check ends in exactly one of these six. */
  'login.succeeded': [Source & { accountId: string }];
  'login.failed': [Source];
  /** Account (username + source, or username from strangers) throttled: answered like a failure. */
  'login.throttled': [Source & { scope: 'account_ip' | 'account'; retryAfterSeconds: number }];
  /** Too many failures from one source: 429. */
  'login.rate_limited': [Source & { retryAfterSeconds: number }];
  /** Too many password hashes in flight: 503. */
  'login.shed': [Source];
  /** Redis or Postgres unreachable: 503. */
  'login.unavailable': [Source];
  /** Trickle migration: what the legacy identity provider answered for an unknown user (never who, never the password). */
  'legacy_idp.checked': [{ outcome: 'migrated' | 'invalid' | 'unavailable' | 'circuit_open' }];
  /** The failure rate across all accounts crossed the alert threshold (password spraying). */
  'login.spraying_suspected': [{ failuresPerMinute: number }];
  /** POST /register or /password/forgot refused with 429: the source's or the email address's budget is spent. */
  'self_service.rate_limited': [{ route: 'register' | 'forgot'; scope: 'ip' | 'email'; ip: string; retryAfterSeconds: number }];
  /** A trusted-gateway header sent by a client that is not a trusted gateway. */
  'gateway.forwarded_ip_ignored': [{ clientId: string }];
  /** A client failed to authenticate (wrong secret, unknown client). `clientId` as claimed, when well-formed. */
  'client_auth.failed': [{ clientId: string | null; ip: string }];
  /** Client authentication refused before it was tried: too many failures from this source or for this client. */
  'client_auth.rate_limited': [{ clientId: string | null; ip: string; scope: 'ip' | 'client'; retryAfterSeconds: number }];
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
  /** Second factor (src/accounts/mfa.ts): ids and the method only, never a secret or code. */
  'mfa.enrolled': [{ accountId: string }];
  'mfa.challenge_passed': [MfaCheck];
  'mfa.challenge_failed': [MfaCheck];
  'mfa.recovery_code_used': [MfaCheck];
  'mfa.disabled': [{ accountId: string }];
  'mfa.reset': [{ accountId: string }];
};

type MfaCheck = { accountId: string; clientId: string | null; method: 'otp' | 'recovery_code' };

export type SecurityEventName = keyof SecurityEventMap;

export class SecurityEvents extends EventEmitter<SecurityEventMap> {}

/** A bus whose every event is logged (see logSecurityEvents). */
export function createSecurityEvents(logger: Logger): SecurityEvents {
  const events = new SecurityEvents();
  logSecurityEvents(events, logger);
  return events;
}

// Every event name with its log level, and whether its lines are sampled
// (at most one per SAMPLE_MS); a missing name is a type error.
const LOGGING: Record<SecurityEventName, { level: 'info' | 'warn'; sampled?: true }> = {
  'login.succeeded': { level: 'info' },
  'login.failed': { level: 'info' },
  'login.throttled': { level: 'warn' },
  'login.rate_limited': { level: 'warn', sampled: true },
  'login.shed': { level: 'warn', sampled: true },
  'login.unavailable': { level: 'warn', sampled: true },
  'login.spraying_suspected': { level: 'warn' },
  'legacy_idp.checked': { level: 'info', sampled: true },
  'self_service.rate_limited': { level: 'warn', sampled: true },
  'gateway.forwarded_ip_ignored': { level: 'warn', sampled: true },
  'client_auth.failed': { level: 'info', sampled: true },
  'client_auth.rate_limited': { level: 'warn', sampled: true },
  'refresh.reuse': { level: 'warn' },
  'refresh.grace_replay': { level: 'info' },
  'mfa.enrolled': { level: 'info' },
  'mfa.challenge_passed': { level: 'info' },
  'mfa.challenge_failed': { level: 'info' },
  'mfa.recovery_code_used': { level: 'warn' },
  'mfa.disabled': { level: 'warn' },
  'mfa.reset': { level: 'warn' },
};

export const SECURITY_EVENT_NAMES = Object.keys(LOGGING) as SecurityEventName[];

export const SAMPLE_MS = 10_000;

/**
 * Logs every security event as one line: `{event, outcome, ...ids}`. A
 * sampled event logs its first occurrence, then nothing for SAMPLE_MS; at
 * the end of that time one line `{event, outcome, suppressed}` says how many
 * were left out.
 */
export function logSecurityEvents(events: SecurityEvents, logger: Logger): void {
  for (const name of SECURITY_EVENT_NAMES) {
    const { level, sampled } = LOGGING[name];
    let quietUntil = 0;
    let suppressed = 0;
    const flush = () => {
      if (suppressed) logger[level]({ event: 'security', outcome: name, suppressed }, `${name}: ${suppressed} more not logged`);
      suppressed = 0;
    };
    events.on(name, (detail: object) => {
      const now = Date.now();
      if (sampled && now < quietUntil) {
        if (suppressed++ === 0) setTimeout(flush, quietUntil - now).unref();
        return;
      }
      if (sampled) quietUntil = now + SAMPLE_MS;
      logger[level]({ event: 'security', outcome: name, ...detail }, name);
    });
  }
}

/** Login outcomes, rate-limit blocks, client-authentication failures and refresh reuse, counted from the same events. */
export function countSecurityEvents(events: SecurityEvents, metrics: Metrics): void {
  const outcome = (name: SecurityEventName) => name.slice('login.'.length);
  for (const name of ['login.succeeded', 'login.failed', 'login.throttled', 'login.rate_limited', 'login.shed', 'login.unavailable'] as const) {
    events.on(name, ({ via }: { via: LoginVia }) => metrics.loginAttempts.inc({ via, outcome: outcome(name) }));
  }
  events.on('login.throttled', ({ scope }) => metrics.rateLimitBlocks.inc({ limiter: scope }));
  events.on('login.rate_limited', () => metrics.rateLimitBlocks.inc({ limiter: 'ip' }));
  events.on('self_service.rate_limited', ({ route, scope }) => metrics.rateLimitBlocks.inc({ limiter: `${route}_${scope}` }));
  events.on('login.shed', () => metrics.passwordHashesShed.inc());
  events.on('client_auth.failed', () => metrics.clientAuthFailures.inc());
  events.on('client_auth.rate_limited', ({ scope }) => metrics.rateLimitBlocks.inc({ limiter: `client_auth_${scope}` }));
  events.on('refresh.reuse', ({ detectedBy }) => metrics.refreshReuse.inc({ detected_by: detectedBy }));
  events.on('legacy_idp.checked', ({ outcome }) => metrics.legacyIdpChecks.inc({ outcome }));
}

// The one error catalogue. Every error the service answers with has a stable
// code (clients may match it), an HTTP status and one JSON shape per surface:
//
//   OAuth endpoints (/token, introspection, revocation)  RFC 6749 §5.2
//       {"error": <oauth code>, "error_description": "..."}
//   Bearer-protected routes (admin API, /account/*)      RFC 6750 §3
//       WWW-Authenticate: Bearer error="...", and the same JSON body
//   admin and self-service JSON APIs                      documented in OpenAPI
//       {"error": <code>, "error_description": "...", "field"?: "...", "request_id"?: "..."}
//
// Code throws ServiceError (or StoreUnavailable) with a catalogue code and
// compares codes, never message text. The HTTP layer renders; the OAuth
// boundary (src/tokens/oidc.ts) converts to oidc-provider's error classes.

/** code → HTTP status, and the RFC 6749 code used on OAuth endpoints. */
export const CATALOGUE = {
  /** Request body or parameters fail their schema; `field` names the input. */
  validation_failed: { status: 400, oauth: 'invalid_request' },
  /** Malformed request: not JSON, bad encoding, duplicated parameter. */
  invalid_request: { status: 400, oauth: 'invalid_request' },
  /** No credentials at all (RFC 6750 §3.1: a bare challenge). */
  unauthorized: { status: 401, oauth: 'invalid_client' },
  /** Credentials present but invalid, expired or revoked. */
  invalid_token: { status: 401, oauth: 'invalid_grant' },
  /** Authenticated, but the token lacks the role or scope. */
  insufficient_scope: { status: 403, oauth: 'invalid_scope' },
  /** The action is not allowed in this state (registration closed, wrong password). */
  forbidden: { status: 403, oauth: 'access_denied' },
  not_found: { status: 404, oauth: 'invalid_request' },
  /** Duplicate, or the resource is in the wrong state. */
  conflict: { status: 409, oauth: 'invalid_request' },
  payload_too_large: { status: 413, oauth: 'invalid_request' },
  unsupported_media_type: { status: 415, oauth: 'invalid_request' },
  /** Too many attempts from one source: 429 with Retry-After. */
  rate_limited: { status: 429, oauth: 'temporarily_unavailable' },
  /** Postgres or Redis unreachable, or too much work in flight: 503 with Retry-After. */
  temporarily_unavailable: { status: 503, oauth: 'temporarily_unavailable' },
  /** A bug. Logged at error level with the request id; never a stack trace on the wire. */
  server_error: { status: 500, oauth: 'server_error' },
  /** Boot or CLI: configuration that cannot work (exit code 1 or 2, never an HTTP answer). */
  config_invalid: { status: 500, oauth: 'server_error' },
} as const satisfies Record<string, { status: number; oauth: string }>;

export type ErrorCode = keyof typeof CATALOGUE;
export const ERROR_CODES = Object.keys(CATALOGUE) as ErrorCode[];

export type ErrorOptions = { field?: string; cause?: unknown; retryAfter?: number };

export class ServiceError extends Error {
  readonly code: ErrorCode;
  /** The request field at fault (validation_failed), for clients and forms. */
  readonly field: string | undefined;
  /** Seconds, sent as Retry-After (429 and 503). */
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ServiceError';
    this.code = code;
    this.field = options.field;
    this.retryAfter = options.retryAfter ?? (code === 'temporarily_unavailable' ? 1 : undefined);
  }

  get status(): number {
    return CATALOGUE[this.code].status;
  }

  /** The admin / self-service JSON shape. */
  toJSON(): ApiErrorBody {
    return { error: this.code, error_description: this.message, ...(this.field ? { field: this.field } : {}) };
  }
}

export type ApiErrorBody = { error: ErrorCode; error_description: string; field?: string; request_id?: string };

export type Store = 'postgres' | 'redis';

/** A store could not be reached or timed out: 503, labelled with the store for logs and metrics. */
export class StoreUnavailable extends ServiceError {
  readonly store: Store;

  constructor(store: Store, cause: unknown) {
    super('temporarily_unavailable', `the ${store === 'postgres' ? 'database' : 'token store'} is unavailable, try again later`, {
      cause,
    });
    this.name = 'StoreUnavailable';
    this.store = store;
  }
}

/**
 * Errors JavaScript itself throws for bugs. Store wrappers let these through
 * untouched, so a programming error is a 500 and never passes for an outage.
 */
export function isProgrammingError(err: unknown): boolean {
  return err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError || err instanceof SyntaxError;
}

/** Any thrown value as a ServiceError; unknown errors become server_error (the cause is kept for the log). */
export function asServiceError(err: unknown): ServiceError {
  if (err instanceof ServiceError) return err;
  return new ServiceError('server_error', 'internal error', { cause: err });
}

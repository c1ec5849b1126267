// The service's one error type. OAuth endpoints answer with oidc-provider's
// RFC 6749 errors; everything else (CLI, admin API, boot) throws this, and the
// HTTP layer maps `code` to a status. Codes are stable: clients may match them.

export const ERROR_STATUS = {
  config_invalid: 500,
  validation_failed: 400,
  not_found: 404,
  conflict: 409,
  unauthorized: 401,
  forbidden: 403,
  store_unavailable: 503,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class ServiceError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { field?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ServiceError';
    this.code = code;
    this.field = options?.field;
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  toJSON(): { error: ErrorCode; message: string; field?: string } {
    return { error: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) };
  }
}

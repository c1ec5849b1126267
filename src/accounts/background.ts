// Work that runs after the answer has gone out: what a self-service request
// does for an address that has an account (write a token, send a mail) and
// does not do for one that has none. Its answer, and its time, are then the
// same for both. Each task also starts after a random delay (up to
// `maxDelayMs`), so that its load does not land on the same client's next
// request either, where it could be timed. A failure is logged, never
// thrown; close() waits for what is still pending.
import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../observability/log.ts';

export class Background {
  readonly #maxDelayMs: number;
  readonly #logger: Logger;
  readonly #pending = new Set<Promise<void>>();

  constructor(maxDelayMs: number, logger: Logger) {
    this.#maxDelayMs = maxDelayMs;
    this.#logger = logger;
  }

  run(what: string, work: () => Promise<void>): void {
    const task: Promise<void> = sleep(this.#maxDelayMs ? randomInt(this.#maxDelayMs + 1) : 0)
      .then(work)
      .catch((err: unknown) => this.#logger.warn({ err: { message: (err as Error)?.message } }, `${what} failed`))
      .finally(() => this.#pending.delete(task));
    this.#pending.add(task);
  }

  /** Resolves when every task started so far has finished. */
  async settle(): Promise<void> {
    while (this.#pending.size) await Promise.all([...this.#pending]);
  }
}

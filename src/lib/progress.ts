// Progress of long CLI work on standard error: a one-line bar redrawn in
// place on a terminal, one JSON object a line otherwise (CI, pipes, logs),
// so that standard output keeps only the final summary.

export type ProgressFigures = { done: number; total: number; failed: number };
type Out = { isTTY?: boolean; columns?: number; write(text: string): unknown };

/** A reporter for `what` (e.g. "users"): call it with each update, then `.end()`. */
export function progressReporter(what: string, out: Out, now: () => number = () => performance.now()) {
  const started = now();
  let lastLine = -Infinity;
  const rate = (done: number) => Math.round(done / Math.max((now() - started) / 1000, 0.001));
  const report = ({ done, total, failed }: ProgressFigures, final = false) => {
    if (out.isTTY) {
      const width = Math.max(10, Math.min(40, (out.columns ?? 80) - 60));
      const filled = total ? Math.round((width * done) / total) : width;
      const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
      out.write(`\r${bar} ${done.toLocaleString('en')}/${total.toLocaleString('en')} ${what}  ${rate(done).toLocaleString('en')}/s  errors ${failed}${final ? '\n' : ''}`);
      return;
    }
    // At most one line a second, and always the last.
    if (!final && now() - lastLine < 1000) return;
    lastLine = now();
    out.write(`${JSON.stringify({ progress: what, done, total, rate_per_s: rate(done), errors: failed, ...(final ? { finished: true } : {}) })}\n`);
  };
  let last: ProgressFigures = { done: 0, total: 0, failed: 0 };
  return Object.assign((figures: ProgressFigures) => report((last = figures)), { end: () => report(last, true) });
}

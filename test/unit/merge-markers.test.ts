// A merge that left conflict markers in a tracked file (README once shipped
// two of them) fails here, before anyone reads the result.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');
const TEXT = /\.(ts|js|mjs|json|md|prisma|sql|ya?ml|conf|cfg|sh|toml|example)$|(^|\/)(Dockerfile|Caddyfile|run)$/;

test('no tracked text file holds git conflict markers', () => {
  const files = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' })
    .split('\n')
    .filter((f) => TEXT.test(f) && f !== 'package-lock.json');
  const found: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(resolve(ROOT, file), 'utf8');
    } catch {
      continue; // deleted in the work tree
    }
    text.split('\n').forEach((line, i) => {
      if (/^(<{7}|>{7}) /.test(line) || line === '='.repeat(7)) found.push(`${file}:${i + 1}`);
    });
  }
  assert.deepEqual(found, []);
});

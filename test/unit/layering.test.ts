// Layers point one way. Reads every import in src/ and fails on an import of
// a higher layer, an import between two different folders of the same layer,
// or an import cycle between files. The table is README's "Layout" section.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

const SRC = resolve(import.meta.dirname, '../../src');

/** Lowest first. A file may import its own folder and any lower layer. */
export const LAYERS: readonly (readonly string[])[] = [
  ['errors.ts', 'lib', 'observability', 'verify'],
  ['config'],
  ['generated'],
  ['store'],
  ['security'],
  ['accounts', 'keys', 'clients'],
  ['tokens'],
  ['http'],
  ['api'],
  ['service.ts'],
  ['cli.ts'],
];

/** The unit a file belongs to: its top folder under src/, or the file itself at the top. */
const unitOf = (file: string) => relative(SRC, file).split('/')[0]!;
const rankOf = (unit: string) => LAYERS.findIndex((layer) => layer.includes(unit));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const path = join(dir, d.name);
    if (d.isDirectory()) return d.name === 'generated' ? [] : sourceFiles(path);
    return /\.(ts|js)$/.test(d.name) && !d.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Relative imports of one file (static, dynamic and re-exports), resolved to paths. */
export function importsOf(file: string, text = readFileSync(file, 'utf8')): string[] {
  const specifiers = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm)].map((m) => m[1]!);
  return specifiers.map((s) => resolve(dirname(file), s));
}

/** Every rule the imports of `files` break, as readable lines. */
export function violations(files: readonly string[], read: (file: string) => string[] = (f) => importsOf(f)): string[] {
  const problems: string[] = [];
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const from = unitOf(file);
    const targets = read(file).filter((t) => t.startsWith(SRC + '/'));
    graph.set(file, targets);
    if (rankOf(from) < 0) problems.push(`${relative(SRC, file)}: src/${from} is in no layer (add it to LAYERS and README's Layout)`);
    for (const target of targets) {
      const to = unitOf(target);
      if (to === from) continue;
      const [a, b] = [rankOf(from), rankOf(to)];
      if (b > a) problems.push(`${relative(SRC, file)} imports ${relative(SRC, target)}: ${to} is above ${from}`);
      else if (b === a) problems.push(`${relative(SRC, file)} imports ${relative(SRC, target)}: ${from} and ${to} are siblings`);
    }
  }
  // Cycles between files (within a folder, since folders are ranked).
  const state = new Map<string, 'open' | 'done'>();
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'open') {
      problems.push(`import cycle: ${[...path.slice(path.indexOf(file)), file].map((f) => relative(SRC, f)).join(' → ')}`);
      return;
    }
    state.set(file, 'open');
    for (const next of graph.get(file) ?? []) if (graph.has(next)) visit(next, [...path, file]);
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file, []);
  return problems;
}

test('src/ imports point down the layers, never up, sideways or in a cycle', () => {
  const files = sourceFiles(SRC);
  assert.ok(files.length > 30, 'read the source tree');
  assert.deepEqual(violations(files), []);
});

test('the check itself catches an upward import, a sibling import and a cycle', () => {
  const f = (p: string) => join(SRC, p);
  const imports: Record<string, string[]> = {
    [f('store/redis.ts')]: [f('tokens/provider.ts')],
    [f('accounts/users.ts')]: [f('keys/lifecycle.ts')],
    [f('tokens/a.ts')]: [f('tokens/b.ts')],
    [f('tokens/b.ts')]: [f('tokens/a.ts')],
    [f('tokens/provider.ts')]: [f('store/redis.ts')],
  };
  const found = violations(Object.keys(imports), (file) => imports[file]!);
  assert.deepEqual(found, [
    'store/redis.ts imports tokens/provider.ts: tokens is above store',
    'accounts/users.ts imports keys/lifecycle.ts: accounts and keys are siblings',
    'import cycle: store/redis.ts → tokens/provider.ts → store/redis.ts',
    'import cycle: tokens/a.ts → tokens/b.ts → tokens/a.ts',
  ]);
});

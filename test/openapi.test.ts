// The OpenAPI 3.1 document served on the admin port is generated from the
// request schemas and passes Redocly's recommended ruleset.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { startTestService, type TestService } from './support/service.ts';

let svc: TestService;
before(async () => {
  svc = await startTestService();
});
after(() => svc.stop());

test('/admin/openapi.json is OpenAPI 3.1 and lints clean with the recommended ruleset', async () => {
  const res = await fetch(`${svc.adminUrl}/admin/openapi.json`);
  assert.equal(res.status, 200);
  const doc = (await res.json()) as {
    openapi: string;
    paths: Record<string, Record<string, unknown>>;
    components: { schemas: Record<string, unknown> };
  };
  assert.equal(doc.openapi, '3.1.0');
  for (const path of ['/admin/users', '/admin/users/{id}', '/admin/clients', '/admin/clients/{id}/rotate-secret', '/admin/audit', '/register', '/password/forgot']) {
    assert.ok(doc.paths[path], path);
  }
  // Generated from the same schema that validates: the strict body has no role or status.
  assert.match(JSON.stringify(doc.paths['/register']), /#\/components\/schemas\/Registration/);
  const reg = JSON.stringify(doc.components.schemas.Registration);
  assert.match(reg, /"additionalProperties":false/);
  assert.doesNotMatch(reg, /"roles"|"status":\{/);

  const problems = await lintFromString({
    source: JSON.stringify(doc),
    absoluteRef: 'openapi.json',
    config: await createConfig({ extends: ['recommended'] }),
  });
  const shown = problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location[0]?.pointer}`);
  assert.deepEqual(shown, []);

  // The linter does find problems: the same document with one operation broken.
  const broken = structuredClone(doc) as { paths: Record<string, Record<string, Record<string, unknown>>> };
  delete broken.paths['/admin/users']!.get!.operationId;
  delete broken.paths['/admin/users']!.get!.responses;
  const found = await lintFromString({
    source: JSON.stringify(broken),
    absoluteRef: 'openapi.json',
    config: await createConfig({ extends: ['recommended'] }),
  });
  assert.ok(found.some((p) => p.ruleId === 'operation-operationId'), JSON.stringify(found.map((p) => p.ruleId)));
});

test('the public port does not serve the admin API', async () => {
  const res = await fetch(`${svc.publicUrl}/admin/openapi.json`);
  assert.notEqual(res.status, 200);
});

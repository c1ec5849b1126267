// Legacy password hashes made by other implementations (htpasswd, mkpasswd,
// Python's bcrypt and argon2-cffi, the argon2 reference CLI): they verify as
// the legacy system did, off the event loop; through the service they import,
// log in and are replaced by argon2id of the full password; this service's own
// argon2id hashes survive an export → import round trip.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { refuseImportedHash, schemeOf } from '../src/accounts/hash-schemes/index.ts';
import { PasswordHasher } from '../src/accounts/passwords.ts';
import { call, gatewayAndAdmin, gatewayFor } from './support/admin.ts';
import { argon2Cli, htpasswdBcrypt, mkpasswdBcrypt, pythonArgon2, pythonBcrypt } from './support/hash-fixtures.ts';
import { startTestService, type TestService } from './support/service.ts';

const hasher = new PasswordHasher({ memoryCost: 19_456, timeCost: 2, parallelism: 1 });

describe('verification of hashes made elsewhere', () => {
  const password = 'correct horse battery staple';
  test('bcrypt from htpasswd ($2y$), mkpasswd ($2b$, $2a$) and Python ($2b$)', async () => {
    const hashes = [htpasswdBcrypt(password), mkpasswdBcrypt(password), mkpasswdBcrypt(password, 5, 'a'), pythonBcrypt(password)];
    assert.deepEqual(hashes.map((h) => h.slice(0, 4)), ['$2y$', '$2b$', '$2a$', '$2b$']);
    for (const hash of hashes) {
      assert.equal(refuseImportedHash(hash), null, hash);
      assert.equal(schemeOf(hash)?.name, 'bcrypt');
      assert.equal(await hasher.verify(hash, password), true, hash);
      assert.equal(await hasher.verify(hash, `${password}!`), false, hash);
      assert.ok(hasher.needsRehash(hash));
    }
  });

  test('bcrypt reads the first 72 bytes exactly as the legacy system did, even when the cut splits a character', async () => {
    const long = 'x'.repeat(71) + 'é'.repeat(4) + 'y'; // 80 bytes; byte 72 is the first half of an é
    assert.equal(Buffer.byteLength(long), 80);
    for (const hash of [pythonBcrypt(long), htpasswdBcrypt(long), mkpasswdBcrypt(long)]) {
      assert.equal(await hasher.verify(hash, long), true, `the full password, ${hash.slice(0, 4)}`);
      assert.equal(await hasher.verify(hash, 'x'.repeat(71) + 'é'), true, 'anything with the same first 72 bytes, as the legacy system allowed');
      assert.equal(await hasher.verify(hash, 'x'.repeat(71) + 'e'.repeat(9)), false, 'a different 72nd byte');
      assert.equal(await hasher.verify(hash, 'x'.repeat(71)), false, '71 bytes');
    }
  });

  test('a password the legacy system hashed as typed (not NFC) still verifies', async () => {
    const nfd = 'Crème brûlée à la façon'.normalize('NFD');
    const hash = pythonBcrypt(nfd);
    assert.equal(await hasher.verify(hash, nfd), true);
    assert.equal(await hasher.verify(hash, nfd.normalize('NFC')), false, 'bcrypt saw the NFD bytes');
  });

  test('argon2 from the reference CLI (id, i, d; v=19 and v=16) and Python argon2-cffi', async () => {
    const hashes = [
      argon2Cli(password),
      argon2Cli(password, { variant: 'i', t: 3 }),
      argon2Cli(password, { variant: 'd', p: 2 }),
      argon2Cli(password, { version: 10 }),
      pythonArgon2(password, { memoryKib: 8192, t: 2, p: 2 }),
      pythonArgon2(password), // argon2-cffi's own defaults
    ];
    assert.ok(hashes[3]!.includes('$v=16$'));
    for (const hash of hashes) {
      assert.equal(refuseImportedHash(hash), null, hash);
      assert.equal(await hasher.verify(hash, password), true, hash);
      assert.equal(await hasher.verify(hash, 'not it'), false, hash);
    }
    // Parameters reordered: the same hash, still verified.
    const [head, params, ...rest] = hashes[0]!.split('$').slice(2);
    const reordered = `$argon2id$${head}$${params!.split(',').reverse().join(',')}$${rest.join('$')}`;
    assert.notEqual(reordered, hashes[0]);
    assert.equal(await hasher.verify(reordered, password), true);
  });

  test('bcrypt runs off the event loop: timers keep firing during a cost-13 verification', async () => {
    const hash = mkpasswdBcrypt(password, 13); // a few hundred ms of Blowfish
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const started = performance.now();
    const ok = await hasher.verify(hash, password);
    const ms = performance.now() - started;
    clearInterval(timer);
    assert.equal(ok, true);
    // On the event loop (bcryptjs) this was 0 ticks; in the thread pool the loop keeps running.
    assert.ok(ticks >= Math.min(10, ms / 5 / 4), `${ticks} timer ticks in ${ms.toFixed(0)} ms`);
  });
});

describe('imported hashes through the service', () => {
  let svc: TestService;
  let gw: Awaited<ReturnType<typeof gatewayFor>>;
  let token: string;
  before(async () => {
    svc = await startTestService();
    ({ gw, token } = await gatewayAndAdmin(svc));
  });
  after(() => svc.stop());

  const importLines = async (target: TestService, bearer: string, lines: object[]) => {
    const raw = lines.map((l) => JSON.stringify(l)).join('\n');
    const res = await call(target.adminUrl, 'POST', '/admin/users/import', { token: bearer, raw, type: 'application/x-ndjson' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  const hashOf = async (target: TestService, email: string) => (await target.stores.db.user.findUniqueOrThrow({ where: { email } })).passwordHash!;

  test('a $2b$ hash of an 80-byte password: the full password logs in and is rehashed with argon2id', async () => {
    const password = 'x'.repeat(71) + 'é'.repeat(4) + 'y'; // 80 bytes; the 72-byte cut splits an é
    const report = await importLines(svc, token, [{ email: 'eighty@example.com', password_hash: pythonBcrypt(password, 10) }]);
    assert.equal(report.created, 1);
    await assert.rejects(gw.login('eighty@example.com', 'x'.repeat(80)), (e: any) => e.error === 'invalid_grant');
    assert.match(await hashOf(svc, 'eighty@example.com'), /^\$2b\$10\$/);

    assert.ok((await gw.login('eighty@example.com', password)).access_token);
    const upgraded = await hashOf(svc, 'eighty@example.com');
    assert.match(upgraded, /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/);
    // argon2id of the FULL password: the last 8 bytes count now.
    assert.ok(await hasher.verify(upgraded, password));
    assert.equal(await hasher.verify(upgraded, Buffer.from(password).subarray(0, 72).toString()), false);
    assert.ok((await gw.login('eighty@example.com', password)).access_token);
    await assert.rejects(gw.login('eighty@example.com', 'x'.repeat(71) + 'é'), (e: any) => e.error === 'invalid_grant');
  });

  test('argon2 hashes of other implementations log in and are upgraded to this service\'s parameters', async () => {
    const password = 'argon2 made elsewhere';
    await importLines(svc, token, [
      { email: 'cffi@example.com', password_hash: pythonArgon2(password, { memoryKib: 8192, t: 2, p: 2 }) },
      { email: 'cli-i@example.com', password_hash: argon2Cli(password, { variant: 'i', version: 10 }) },
    ]);
    for (const email of ['cffi@example.com', 'cli-i@example.com']) {
      assert.ok((await gw.login(email, password)).access_token, email);
      assert.match(await hashOf(svc, email), /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/, email);
    }
  });

  test('hashes whose cost is out of bounds are refused line by line, with the reason', async () => {
    const report = await importLines(svc, token, [
      { email: 'ok@example.com', password_hash: mkpasswdBcrypt('fine', 4) },
      { email: 'dear@example.com', password_hash: '$2b$15$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy' },
      { email: 'hang@example.com', password_hash: '$2b$31$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy' },
      { email: 'huge@example.com', password_hash: '$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQxMjM0$ACgtMhz9aA6bWYerbQdZP29MBVINeWanKGMgWbkST1M' },
    ]);
    assert.equal(report.created, 1);
    assert.deepEqual(
      report.errors.map((e: any) => [e.line, e.field, /cost (\d+)|m=(\d+)/.exec(e.message)?.[0]]),
      [
        [2, 'password_hash', 'cost 15'],
        [3, 'password_hash', 'cost 31'],
        [4, 'password_hash', 'm=4194304'],
      ],
    );
  });

  test('export → import: an argon2id hash written by this service imports into another and logs in', async () => {
    const password = 'exported and imported';
    const created = await call(svc.adminUrl, 'POST', '/admin/users', { token, body: { email: 'moving@example.com', password, roles: ['viewer'] } });
    assert.equal(created.status, 201);
    const exported = await hashOf(svc, 'moving@example.com'); // what a database export carries
    assert.match(exported, /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/);

    const other = await startTestService();
    try {
      const { gw: otherGw, token: otherToken } = await gatewayAndAdmin(other);
      const report = await importLines(other, otherToken, [{ email: 'moving@example.com', roles: ['viewer'], password_hash: exported }]);
      assert.deepEqual(report, { created: 1, failed: 0, errors: [] });
      assert.ok((await otherGw.login('moving@example.com', password)).access_token);
      assert.equal(await hashOf(other, 'moving@example.com'), exported, 'same parameters: no rehash needed');
      await assert.rejects(otherGw.login('moving@example.com', 'not the password'), (e: any) => e.error === 'invalid_grant');
    } finally {
      await other.stop();
    }
  });
});

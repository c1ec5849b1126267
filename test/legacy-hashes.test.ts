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
import { firebaseHash } from '../src/accounts/hash-schemes/scrypt.ts';
import {
  argon2Cli,
  aspNetV3,
  djangoPbkdf2,
  FIREBASE_VECTOR,
  htpasswdBcrypt,
  mkpasswdBcrypt,
  mkpasswdShaCrypt,
  opensslShaCrypt,
  passlib,
  pythonArgon2,
  pythonBcrypt,
  slappasswd,
} from './support/hash-fixtures.ts';
import { startTestService, type TestService } from './support/service.ts';

const hasher = new PasswordHasher({ memoryCost: 19_456, timeCost: 2, parallelism: 1 });

/** Verifies `hash` while a 5 ms timer runs: on the event loop (bcryptjs, an inline SHA-crypt loop) it would not tick. */
async function verifiesOffTheLoop(hash: string, password: string): Promise<void> {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const started = performance.now();
  const ok = await hasher.verify(hash, password);
  const ms = performance.now() - started;
  clearInterval(timer);
  assert.equal(ok, true);
  assert.ok(ticks >= Math.min(10, ms / 5 / 4), `${ticks} timer ticks in ${ms.toFixed(0)} ms`);
}

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
    await verifiesOffTheLoop(mkpasswdBcrypt(password, 13), password); // a few hundred ms of Blowfish
  });
});

/** Hashes of `password` by other implementations, one per format this service imports (besides bcrypt and argon2 above). */
function otherFormats(password: string): Record<string, string> {
  return {
    'sha-crypt $6$ (openssl passwd -6)': opensslShaCrypt(password, 6),
    'sha-crypt $5$ (openssl passwd -5)': opensslShaCrypt(password, 5),
    'sha-crypt $6$rounds= (mkpasswd)': mkpasswdShaCrypt(password, 6, 20_000),
    'sha-crypt $5$rounds= (mkpasswd)': mkpasswdShaCrypt(password, 5, 12_000),
    'sha-crypt $6$ (passlib, 656000 rounds)': passlib('sha512_crypt', password),
    '{SSHA} (slappasswd)': slappasswd(password),
    '{SSHA512} (passlib)': passlib('ldap_salted_sha512', password),
    '{SSHA256} (passlib)': passlib('ldap_salted_sha256', password),
    'pbkdf2-sha256 (passlib)': passlib('pbkdf2_sha256', password),
    'pbkdf2-sha512 (passlib)': passlib('pbkdf2_sha512', password, { rounds: 210_000 }),
    'scrypt (passlib)': passlib('scrypt', password, { rounds: 14 }),
    'django pbkdf2_sha256 (hashlib)': djangoPbkdf2(password),
    'django pbkdf2_sha256 (passlib)': passlib('django_pbkdf2_sha256', password),
    'django argon2 (passlib)': passlib('django_argon2', password, { memory_cost: 8192, rounds: 2, parallelism: 2 }),
    'asp.net core identity v3 sha256 (hashlib)': aspNetV3(password, 'sha256', 10_000),
    'asp.net core identity v3 sha512 (hashlib)': aspNetV3(password, 'sha512', 100_000),
  };
}

describe('verification of the other imported formats', () => {
  const password = 'Grüße, 1 correct horse';
  test('each format verifies the right password, refuses a wrong one and needs a rehash', async () => {
    for (const [name, hash] of Object.entries(otherFormats(password))) {
      assert.equal(refuseImportedHash(hash), null, name);
      assert.ok(schemeOf(hash), name);
      assert.equal(await hasher.verify(hash, password), true, name);
      assert.equal(await hasher.verify(hash, `${password}.`), false, name);
      assert.ok(hasher.needsRehash(hash), name);
    }
  });

  test("Firebase's modified scrypt: the published test vector", async () => {
    const c = FIREBASE_VECTOR.hashConfig;
    const config = { signerKey: Buffer.from(c.base64_signer_key, 'base64'), saltSeparator: Buffer.from(c.base64_salt_separator, 'base64'), rounds: c.rounds, memCost: c.mem_cost };
    const hash = firebaseHash(config, FIREBASE_VECTOR.salt, FIREBASE_VECTOR.passwordHash);
    assert.equal(schemeOf(hash)?.name, 'firebase-scrypt');
    assert.equal(refuseImportedHash(hash), null);
    assert.equal(await hasher.verify(hash, FIREBASE_VECTOR.password), true);
    assert.equal(await hasher.verify(hash, 'user2password'), false);
    assert.equal(await hasher.verify(firebaseHash({ ...config, rounds: 7 }, FIREBASE_VECTOR.salt, FIREBASE_VECTOR.passwordHash), FIREBASE_VECTOR.password), false);
  });

  test('costs beyond the bounds are refused at import, with the reason', () => {
    const c = FIREBASE_VECTOR.hashConfig;
    const key = Buffer.from(c.base64_signer_key, 'base64');
    const refused = {
      shaCrypt: refuseImportedHash(opensslShaCrypt('x', 6).replace('$6$', '$6$rounds=5000000$')),
      pbkdf2: refuseImportedHash(passlib('pbkdf2_sha256', 'x', { rounds: 1000 }).replace('$1000$', '$3000000$')),
      django: refuseImportedHash('pbkdf2_sha256$9000000$salt$' + Buffer.alloc(32).toString('base64')),
      scrypt: refuseImportedHash('$scrypt$ln=22,r=8,p=1$c2FsdA$' + Buffer.alloc(32).toString('base64').replace(/=+$/, '')),
      firebase: refuseImportedHash(firebaseHash({ signerKey: key, saltSeparator: Buffer.from('Bw==', 'base64'), rounds: 8, memCost: 20 }, 'c2FsdA==', key.toString('base64'))),
      ssha: refuseImportedHash('{SSHA}' + Buffer.alloc(21).toString('base64')),
      unknown: refuseImportedHash('{MD5}X03MO1qnZdYdgyfeuILPmQ=='),
    };
    assert.match(refused.shaCrypt!, /rounds 5000000/);
    assert.match(refused.pbkdf2!, /3000000 iterations/);
    assert.match(refused.django!, /9000000 iterations/);
    assert.match(refused.scrypt!, /scrypt memory/);
    assert.match(refused.firebase!, /scrypt memory/);
    assert.match(refused.ssha!, /salt of 1 bytes/);
    assert.match(refused.unknown!, /not a hash of a supported scheme/);
  });

  test('SHA-crypt runs off the event loop: timers keep firing during a 656,000-round verification', async () => {
    await verifiesOffTheLoop(passlib('sha512_crypt', password), password);
  });
});

describe('imported hashes through the service', () => {
  let svc: TestService;
  let gw: Awaited<ReturnType<typeof gatewayFor>>;
  let token: string;
  // Made before the service starts: minutes of fixture-making between two
  // requests would let the server close the client's idle keep-alive socket.
  const password = 'Grüße, 2 correct horse';
  let formats: [string, string][];
  before(async () => {
    formats = Object.entries(otherFormats(password));
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

  test('every other format imports, logs in with the right password only, and is argon2id afterwards', async () => {
    const emails = formats.map((_, i) => `format-${i}@example.com`);
    const report = await importLines(svc, token, formats.map(([, hash], i) => ({ email: emails[i], password_hash: hash })));
    assert.equal(report.created, formats.length, JSON.stringify(report.errors));
    const byScheme = async () => (await call(svc.adminUrl, 'GET', '/admin/users/stats', { token })).body.legacy_hashes_by_scheme;
    assert.deepEqual(await byScheme(), { 'sha-crypt': 5, 'ldap-ssha': 3, pbkdf2: 6, scrypt: 1, argon2: 1 });
    for (const [i, [name, hash]] of formats.entries()) {
      await assert.rejects(gw.login(emails[i]!, `${password}!`), (e: any) => e.error === 'invalid_grant', name);
      assert.equal(await hashOf(svc, emails[i]!), hash, `${name}: a failed login changes nothing`);
      assert.ok((await gw.login(emails[i]!, password)).access_token, name);
      const upgraded = await hashOf(svc, emails[i]!);
      assert.match(upgraded, /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/, name);
      assert.ok(await hasher.verify(upgraded, password), name);
      assert.ok((await gw.login(emails[i]!, password)).access_token, `${name}, again`);
    }
    assert.deepEqual(await byScheme(), {}, 'every one upgraded');
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
      assert.deepEqual(report, { created: 1, skipped: 0, failed: 0, errors: [] });
      assert.ok((await otherGw.login('moving@example.com', password)).access_token);
      assert.equal(await hashOf(other, 'moving@example.com'), exported, 'same parameters: no rehash needed');
      await assert.rejects(otherGw.login('moving@example.com', 'not the password'), (e: any) => e.error === 'invalid_grant');
    } finally {
      await other.stop();
    }
  });
});

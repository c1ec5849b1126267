// Which password hashes import: bounded cost, argon2 parameters in any order.
// (How they verify, against other implementations' hashes: test/legacy-hashes.test.ts.)
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ARGON2_IMPORT_LIMITS } from '../../src/accounts/hash-schemes/argon2.ts';
import { BCRYPT_COST } from '../../src/accounts/hash-schemes/bcrypt.ts';
import { refuseImportedHash } from '../../src/accounts/hash-schemes/index.ts';
import { PasswordHasher } from '../../src/accounts/passwords.ts';

const hasher = new PasswordHasher({ memoryCost: 19_456, timeCost: 2, parallelism: 1 });
const SALT_AND_DIGEST = '$c29tZXNhbHQxMjM0$ACgtMhz9aA6bWYerbQdZP29MBVINeWanKGMgWbkST1M';

describe('import bounds', () => {
  test(`bcrypt: cost ${BCRYPT_COST.min}-${BCRYPT_COST.max} imports, anything dearer or malformed does not`, () => {
    const digest = 'N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy';
    for (const cost of ['04', '10', '14']) assert.equal(refuseImportedHash(`$2b$${cost}$${digest}`), null, cost);
    for (const prefix of ['$2a$', '$2y$']) assert.equal(refuseImportedHash(`${prefix}12$${digest}`), null, prefix);
    assert.match(refuseImportedHash(`$2b$15$${digest}`)!, /bcrypt cost 15 is outside 4-14/);
    assert.match(refuseImportedHash(`$2b$31$${digest}`)!, /cost 31/);
    assert.match(refuseImportedHash(`$2b$03$${digest}`)!, /cost 3/);
    assert.match(refuseImportedHash(`$2x$10$${digest}`)!, /not a hash of a supported scheme/);
    assert.match(refuseImportedHash(`$2b$10$${digest}x`)!, /not a hash of a supported scheme/);
    assert.match(refuseImportedHash('md5:abc')!, /supported scheme \(argon2, bcrypt, scrypt, firebase-scrypt, sha-crypt, ldap-ssha, pbkdf2\)/);
  });

  test('argon2: parameters in any order, version 19 or 16; m, t, p and m × t within the documented bounds', () => {
    for (const params of ['m=19456,t=2,p=1', 'm=19456,p=1,t=2', 't=2,p=1,m=19456', 'p=4,m=65536,t=3']) {
      assert.equal(refuseImportedHash(`$argon2id$v=19$${params}${SALT_AND_DIGEST}`), null, params);
    }
    assert.equal(refuseImportedHash(`$argon2i$v=16$m=4096,t=3,p=1${SALT_AND_DIGEST}`), null);
    assert.equal(refuseImportedHash(`$argon2d$m=4096,t=3,p=1${SALT_AND_DIGEST}`), null, 'no version: 16');
    const L = ARGON2_IMPORT_LIMITS;
    const refused: Record<string, RegExp> = {
      [`m=${L.maxMemoryKib * 2},t=1,p=1`]: /m=524288 is outside/,
      [`m=65536,t=${L.maxTimeCost + 1},p=1`]: /t=65 is outside 1-64/,
      [`m=65536,t=1,p=${L.maxParallelism + 1}`]: /p=17 is outside 1-16/,
      [`m=${L.maxMemoryKib},t=5,p=1`]: /m × t = 1310720 is above 1048576/,
      'm=16,t=1,p=4': /m=16 is outside 32-/,
      'm=65536,t=0,p=1': /t=0/,
      'm=65536,t=2': /needs all of m, t and p/,
      'm=65536,t=2,p=1,x=3': /must be m, t and p \(got x\)/,
      'm=65536,t=2,t=3,p=1': /t is repeated/,
    };
    for (const [params, why] of Object.entries(refused)) assert.match(refuseImportedHash(`$argon2id$v=19$${params}${SALT_AND_DIGEST}`)!, why, params);
    assert.match(refuseImportedHash(`$argon2id$v=18$m=4096,t=2,p=1${SALT_AND_DIGEST}`)!, /version 18/);
    assert.match(refuseImportedHash('$argon2id$v=19$m=4096,t=2,p=1$only-one-part')!, /not an argon2 PHC string/);
  });

  test("this service's own hashes import", async () => {
    const own = await hasher.hash('an exported password');
    assert.match(own, /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/, 'the order argon2 writes');
    assert.equal(refuseImportedHash(own), null);
  });
});

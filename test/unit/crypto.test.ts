// Sealing (AES-256-GCM bound to its place) and the digest helpers.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { safeEqual, seal, sha256, unseal } from '../../src/lib/crypto.ts';

test('sealing round-trips and refuses a wrong KEK or a moved ciphertext', () => {
  const kek = randomBytes(32);
  const sealed = seal(kek, 'private key', 'kid-1');
  assert.equal(unseal(kek, sealed, 'kid-1'), 'private key');
  assert.throws(() => unseal(randomBytes(32), sealed, 'kid-1'), /cannot decrypt/);
  assert.throws(() => unseal(kek, sealed, 'kid-2'), /cannot decrypt/);
});

test('sha256 is base64url SHA-256; safeEqual compares whole strings', () => {
  assert.equal(sha256('abc'), 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
  assert.ok(safeEqual('same', 'same'));
  assert.ok(!safeEqual('same', 'sane'));
  assert.ok(!safeEqual('same', 'same-but-longer'));
});

// The password policy: a pure function of the policy, the password and the email.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_PASSWORD_BYTES } from '../../src/accounts/passwords.ts';
import { checkPassword, commonPasswords } from '../../src/accounts/policy.ts';
import { loadConfig } from '../../src/config/index.ts';

const policy = { minLength: 12, composition: [] } as const;
const reason = (fn: () => unknown) => {
  try {
    fn();
    return 'ok';
  } catch (err) {
    assert.equal((err as { field?: string }).field, 'password');
    return /\((password_[a-z_]+)\)$/.exec((err as Error).message)?.[1];
  }
};

describe('password policy', () => {
  test('minimum length 12 by default, counted in characters', () => {
    assert.equal(reason(() => checkPassword(policy, 'elevenchars')), 'password_too_short');
    assert.equal(reason(() => checkPassword(policy, 'twelve chars')), 'ok');
    assert.equal(reason(() => checkPassword(policy, 'ééééééééééé')), 'password_too_short'); // 11 chars, 22 bytes
  });

  test('the minimum is configurable but never below 8', () => {
    assert.equal(loadConfig({ PASSWORD_MIN_LENGTH: '8' }).passwordPolicy.minLength, 8);
    assert.throws(() => loadConfig({ PASSWORD_MIN_LENGTH: '7' }), /PASSWORD_MIN_LENGTH/);
    assert.equal(loadConfig({}).passwordPolicy.minLength, 12);
  });

  test('64 characters and more are allowed; a byte cap stops huge input', () => {
    assert.equal(reason(() => checkPassword(policy, 'a'.repeat(30) + 'b'.repeat(70))), 'ok');
    assert.equal(reason(() => checkPassword(policy, 'ü'.repeat(200))), 'ok');
    assert.equal(reason(() => checkPassword(policy, 'x'.repeat(MAX_PASSWORD_BYTES + 1))), 'password_too_long');
  });

  test('the shipped common-password list has ≥ 10,000 entries and is enforced', () => {
    const list = commonPasswords();
    assert.ok(list.size >= 10_000, `only ${list.size}`);
    const longCommon = [...list].find((p) => p.length >= 12)!;
    assert.ok(longCommon);
    assert.equal(reason(() => checkPassword(policy, longCommon)), 'password_common');
    assert.equal(reason(() => checkPassword(policy, longCommon.toUpperCase())), 'password_common');
    assert.equal(reason(() => checkPassword({ minLength: 8, composition: [] }, 'password')), 'password_common');
  });

  test('composition rules are off by default and each one works when on', () => {
    assert.deepEqual(loadConfig({}).passwordPolicy.composition, []);
    const all = loadConfig({ PASSWORD_COMPOSITION: 'upper,lower,digit,special' }).passwordPolicy;
    assert.equal(reason(() => checkPassword(all, 'ALL UPPER 123!')), 'password_needs_lower');
    assert.equal(reason(() => checkPassword(all, 'all lower 123!')), 'password_needs_upper');
    assert.equal(reason(() => checkPassword(all, 'No Digits Here!')), 'password_needs_digit');
    assert.equal(reason(() => checkPassword(all, 'NoSpecials1234')), 'password_needs_special');
    assert.equal(reason(() => checkPassword(all, 'Has All 4 kinds!')), 'ok');
    assert.throws(() => loadConfig({ PASSWORD_COMPOSITION: 'emoji' }), /PASSWORD_COMPOSITION/);
  });

  test('the email address is not a password', () => {
    assert.equal(reason(() => checkPassword(policy, 'Long.Name.Here@example.com', { email: 'long.name.here@example.com' })), 'password_is_email');
  });
});

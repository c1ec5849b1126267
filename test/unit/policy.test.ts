// The password policy: a pure function of the policy, the password and the email.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_PASSWORD_BYTES } from '../../src/accounts/passwords.ts';
import { checkPassword, commonPasswords } from '../../src/accounts/policy.ts';
import { checkForm } from '../../src/http/input-hardening.ts';
import { loadConfig } from '../../src/config/index.ts';

/** Percent-encoded WTF-8: UTF-8 that also encodes a lone surrogate the way a careless client does (ED A0 80 for U+D800). */
const percentWtf8 = (s: string) =>
  [...s]
    .flatMap((ch) => {
      const cu = ch.charCodeAt(0);
      if (ch.length === 1 && cu >= 0xd800 && cu <= 0xdfff) return [0xe0 | (cu >> 12), 0x80 | ((cu >> 6) & 0x3f), 0x80 | (cu & 0x3f)];
      return [...Buffer.from(ch)];
    })
    .map((b) => `%${b.toString(16).padStart(2, '0')}`)
    .join('');

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

  test('the characters /token refuses are refused here too: control characters and lone surrogates', () => {
    const fine = 'a fine long passphrase';
    for (const [name, bad] of Object.entries({
      NUL: '\u0000',
      LF: '\n',
      CR: '\r',
      ESC: '\u001b',
      DEL: '\u007f',
      C1: '\u0085',
      'lone high surrogate': '\ud800',
      'lone low surrogate': '\udc00',
      'swapped pair': '\udc00\ud800',
    })) {
      for (const password of [bad + fine, fine + bad, `a fine ${bad} long passphrase`]) {
        assert.equal(reason(() => checkPassword(policy, password)), 'password_invalid_characters', `${name} in ${JSON.stringify(password)}`);
      }
      // The token endpoint refuses the same input in its form (a surrogate sent as WTF-8 bytes, as a client would).
      assert.throws(() => checkForm(`password=${encodeURIComponent(fine)}${percentWtf8(bad)}`), name);
    }
    // A tab, a surrogate pair (emoji), non-Latin scripts and noncharacters are fine.
    for (const password of [`tab\tseparated words`, 'emoji 🔑 passphrase here', 'пароль из двенадцати', 'noncharacter \ufffe here']) {
      assert.equal(reason(() => checkPassword(policy, password)), 'ok', JSON.stringify(password));
      assert.doesNotThrow(() => checkForm(`password=${encodeURIComponent(password)}`));
    }
  });
});

// The key per-IP limits count under: IPv4 alone, IPv6 by its /64.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ipKey } from '../../src/security/ip-key.ts';

test('IPv4 counts alone, also when written IPv4-mapped', () => {
  assert.equal(ipKey('192.0.2.1'), '192.0.2.1');
  assert.equal(ipKey('::ffff:192.0.2.1'), '192.0.2.1');
  assert.notEqual(ipKey('192.0.2.1'), ipKey('192.0.2.2'));
});

test('IPv6 counts by its /64, however it is written', () => {
  const key = ipKey('2001:db8:1:2::1');
  assert.equal(key, '2001:db8:1:2::/64');
  for (const same of ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:DB8:1:2:0:0:0:9', '2001:0db8:0001:0002::abcd', 'fe80::1%eth0'.replace('fe80::1', '2001:db8:1:2::7')]) {
    assert.equal(ipKey(same), key, same);
  }
  for (const other of ['2001:db8:1:3::1', '2001:db8:1::1', '2001:db9:1:2::1']) assert.notEqual(ipKey(other), key, other);
  assert.equal(ipKey('2001:db8:1:2::1', 48), '2001:db8:1::/48');
  assert.equal(ipKey('::1'), '::/64');
});

test('what is not an address is its own key', () => {
  assert.equal(ipKey('unknown'), 'unknown');
  assert.equal(ipKey(''), '');
});

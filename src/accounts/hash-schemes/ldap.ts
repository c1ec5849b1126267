// LDAP salted SHA ({SSHA}, {SSHA256}, {SSHA512}): base64 of digest(password ‖ salt) ‖ salt,
// as OpenLDAP's slappasswd and most directory exports write userPassword.
// One digest of a short input; WebCrypto's digest runs in libuv's thread pool.
import { webcrypto } from 'node:crypto';
import { anySpelling, type HashScheme } from './scheme.ts';

const SCHEMES = { SSHA: ['SHA-1', 20], SSHA256: ['SHA-256', 32], SSHA512: ['SHA-512', 64] } as const;
const LDAP = /^\{(SSHA|SSHA256|SSHA512)\}([A-Za-z0-9+/]+={0,2})$/i;

function parse(hash: string) {
  const m = LDAP.exec(hash);
  if (!m) return null;
  const [algorithm, length] = SCHEMES[m[1]!.toUpperCase() as keyof typeof SCHEMES];
  const blob = Buffer.from(m[2]!, 'base64');
  return { algorithm, digest: blob.subarray(0, length), salt: blob.subarray(length) };
}

export const ldapScheme: HashScheme = {
  name: 'ldap-ssha',
  recognizes: (hash) => LDAP.test(hash),
  refuses(hash) {
    const p = parse(hash);
    if (!p) return 'not an LDAP salted SHA hash ({SSHA}, {SSHA256}, {SSHA512})';
    if (p.salt.length < 4 || p.salt.length > 64) return `{SSHA} salt of ${p.salt.length} bytes is outside 4-64`;
    return null;
  },
  async verify(hash, password) {
    const p = parse(hash);
    if (!p || p.salt.length < 4) return false;
    const digest = async (bytes: Buffer) => Buffer.from(await webcrypto.subtle.digest(p.algorithm, Buffer.concat([bytes, p.salt])));
    return anySpelling(password, digest, p.digest);
  },
};

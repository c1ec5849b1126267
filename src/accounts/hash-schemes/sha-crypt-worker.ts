// Worker thread entry: computes one SHA-crypt string (see ./sha-crypt-core.ts) and posts it back.
import { parentPort, workerData } from 'node:worker_threads';
import { shaCrypt } from './sha-crypt-core.ts';

const { password, id, salt, rounds } = workerData as { password: Uint8Array; id: '5' | '6'; salt: string; rounds: string | undefined };
parentPort!.postMessage(shaCrypt(Buffer.from(password), id, salt, rounds));

// The deterministic content served by blobServer: the AES-128-CTR keystream (encryption of zeros)
// keyed by sha256(seed). Anyone can recompute it, it is incompressible, and it runs at GB/s.
import { createCipheriv, createHash, type Cipher } from 'node:crypto';

export const BLOB_CHUNK = 256 * 1024;
const ZEROS = Buffer.alloc(BLOB_CHUNK);

/** A keystream generator for `seed`: call next(n) for the following n bytes. */
export class BlobGenerator {
  private readonly cipher: Cipher;

  constructor(seed: string) {
    const key = createHash('sha256').update(seed, 'utf8').digest();
    this.cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  }

  /** The next `n` bytes (n <= BLOB_CHUNK). */
  next(n: number): Buffer {
    if (n > BLOB_CHUNK) throw new RangeError(`BlobGenerator.next: at most ${BLOB_CHUNK} bytes at a time`);
    return this.cipher.update(ZEROS.subarray(0, n));
  }
}

/** The whole blob in memory (tests; keep it small). */
export function blobBytes(seed: string, bytes: number): Buffer {
  const g = new BlobGenerator(seed);
  const parts: Buffer[] = [];
  for (let left = bytes; left > 0; left -= BLOB_CHUNK) parts.push(g.next(Math.min(left, BLOB_CHUNK)));
  return Buffer.concat(parts, bytes);
}

/** sha256 (hex) of the blob, computed without holding it in memory. */
export function blobSha256(seed: string, bytes: number): string {
  const g = new BlobGenerator(seed);
  const h = createHash('sha256');
  for (let left = bytes; left > 0; left -= BLOB_CHUNK) h.update(g.next(Math.min(left, BLOB_CHUNK)));
  return h.digest('hex');
}

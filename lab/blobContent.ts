// The deterministic content served by blobServer: the AES-128-CTR keystream (encryption of zeros)
// keyed by sha256(seed). Anyone can recompute it, it is incompressible, and it runs at GB/s.
import { createCipheriv, createHash, type Cipher } from 'node:crypto';

export const BLOB_CHUNK = 256 * 1024;
const ZEROS = Buffer.alloc(BLOB_CHUNK);

/** A keystream generator for `seed`, starting at byte `offset` (a multiple of 16): call next(n). */
export class BlobGenerator {
  private readonly cipher: Cipher;

  constructor(seed: string, offset = 0) {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % 16 !== 0) {
      throw new RangeError(`BlobGenerator offset must be a non-negative multiple of 16, got ${offset}`);
    }
    const key = createHash('sha256').update(seed, 'utf8').digest();
    // CTR mode: block i is AES(key, iv + i) with a 128-bit big-endian counter, so seeking is an add.
    const iv = Buffer.from(key.subarray(16, 32));
    let carry = offset / 16;
    for (let i = 15; i >= 0 && carry > 0; i--) {
      const v = (iv[i] as number) + (carry % 256);
      iv[i] = v & 0xff;
      carry = Math.floor(carry / 256) + (v >> 8);
    }
    this.cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), iv);
  }

  /** The next `n` bytes (n <= BLOB_CHUNK). */
  next(n: number): Buffer {
    if (n > BLOB_CHUNK) throw new RangeError(`BlobGenerator.next: at most ${BLOB_CHUNK} bytes at a time`);
    return this.cipher.update(ZEROS.subarray(0, n));
  }
}

/**
 * Keystream chunks of one seed kept in memory (up to a byte budget), so repeated downloads cost no
 * AES work on the real server; beyond the cached prefix a seeked generator takes over.
 */
export class BlobChunkCache {
  private readonly chunks: Buffer[] = [];
  private readonly gen: BlobGenerator;

  /** `budget.bytes` is shared by every cache of a server and shrinks as chunks are kept. */
  constructor(
    readonly seed: string,
    private readonly budget: { bytes: number },
  ) {
    this.gen = new BlobGenerator(seed);
  }

  /** Full BLOB_CHUNK-sized chunk number `index`, or undefined when it lies beyond the budget. */
  chunk(index: number): Buffer | undefined {
    while (this.chunks.length <= index) {
      if (this.budget.bytes < BLOB_CHUNK) return undefined;
      this.budget.bytes -= BLOB_CHUNK;
      this.chunks.push(this.gen.next(BLOB_CHUNK));
    }
    return this.chunks[index];
  }

  get cachedBytes(): number {
    return this.chunks.length * BLOB_CHUNK;
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

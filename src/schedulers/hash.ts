// String hashes for consistent-hashing tables. They only have to be deterministic across runs and
// well mixed; the data plane hashes client addresses with its own function.

/** FNV-1a over the UTF-16 code units of `s`, with a chosen offset basis, then a murmur3 finaliser. */
export function hash32(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // fmix32 (murmur3): FNV alone mixes the last characters poorly, and keys differ mostly there.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function isPrime(n: number): boolean {
  if (n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** Smallest prime >= n. */
export function nextPrime(n: number): number {
  let p = Math.max(2, Math.ceil(n));
  while (!isPrime(p)) p++;
  return p;
}

/** Largest prime <= n. */
export function prevPrime(n: number): number {
  let p = Math.floor(n);
  while (p >= 2 && !isPrime(p)) p--;
  return p;
}

// The flow sync's shared key (config sync.keyFile): read once at start, refused when other users may
// read it (whoever reads it can inject flows) or when it is too short to be a key.
import { readFile, stat } from "node:fs/promises";
import { NatlbError } from "../errors";

/** The shortest key natlb accepts (the addon's syncMessage.minKeyBytes: HMAC-SHA256's strength). */
export const MIN_SYNC_KEY_BYTES = 32;
const MAX_SYNC_KEY_BYTES = 1024;

export async function readSyncKey(path: string): Promise<Uint8Array> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (error) {
    throw new NatlbError("E_SYNC_KEY", `sync.keyFile ${path}: ${(error as Error).message}. Create it on every peer, e.g. (umask 077; openssl rand -hex 32 > ${path})`, { cause: error });
  }
  if ((mode & 0o004) !== 0) {
    throw new NatlbError("E_SYNC_KEY", `sync.keyFile ${path} is readable by every user (mode ${(mode & 0o777).toString(8)}): anyone who reads it can inject flows. Run chmod 600 ${path} (or 640 with a group of your choice)`);
  }
  const key = new Uint8Array(await readFile(path));
  if (key.length < MIN_SYNC_KEY_BYTES || key.length > MAX_SYNC_KEY_BYTES) {
    throw new NatlbError("E_SYNC_KEY", `sync.keyFile ${path} holds ${key.length} bytes: a key needs ${MIN_SYNC_KEY_BYTES} to ${MAX_SYNC_KEY_BYTES}. Write one with (umask 077; openssl rand -hex 32 > ${path}) and copy the same file to every peer`);
  }
  return key;
}

// Runs nftables' `nft` in the caller's network namespace (the kernel set-up's ruleset, src/kernel).
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";

// By its full path: under npm scripts node_modules/.bin comes first in PATH, and a package there
// (@vercel/nft, a test tool's dependency) is also called `nft`.
const NFT = ["/usr/sbin/nft", "/sbin/nft"].find((path) => existsSync(path)) ?? "nft";

export class NftCommandError extends Error {
  constructor(readonly args: readonly string[], readonly stderr: string) {
    super(`nft ${args.join(" ")} failed: ${stderr.trim() || "no output"}`);
    this.name = "NftCommandError";
  }
}

/** `nft <args>`, with `input` on stdin when given (`nft -f -`). */
export function nft(args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(NFT, [...args], { timeout: 10_000 }, (error, stdout, stderr) => {
      if (error) {
        const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
        reject(new NftCommandError(args, missing ? "the nft command is missing: install nftables (apt install nftables)" : stderr || error.message));
      } else {
        resolve(stdout);
      }
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/**
 * Whether a table exists, probed by listing a small set it always has. `nft list tables` (and the
 * table's own listing) fetch every element of every set: 0.8 s of CPU with 50 000 reply claims
 * (measured), which the daemon's periodic check paid every 5 s; one small set's listing takes 20 ms.
 */
export async function nftTableExists(family: string, name: string, alwaysPresentSet: string): Promise<boolean> {
  try {
    await nft(["list", "set", family, name, alwaysPresentSet]);
    return true;
  } catch (error) {
    if (error instanceof NftCommandError && /No such file or directory/.test(error.stderr)) return false;
    throw error;
  }
}

/** Deletes a table if there is one (without listing anything first). */
export async function nftDeleteTableIfPresent(family: string, name: string): Promise<void> {
  try {
    await nft(["delete", "table", family, name]);
  } catch (error) {
    if (!(error instanceof NftCommandError && /No such file or directory/.test(error.stderr))) throw error;
  }
}

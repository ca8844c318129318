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

/** Whether a table exists (by the list of table names: a table's own listing may hold a million set elements). */
export async function nftTableExists(family: string, name: string): Promise<boolean> {
  const tables = (await nft(["list", "tables", family])).split("\n").map((line) => line.trim());
  return tables.includes(`table ${family} ${name}`);
}

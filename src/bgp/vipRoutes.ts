// The routes file natlb writes for BIRD: one blackhole route per VIP to announce, for a `protocol static`
// that includes it (README, "Scale-out behind ECMP (BIRD)"). BIRD only exports them over BGP; natlb's
// kernel set-up owns the VIPs' packets on this host.
import { rename, writeFile } from "node:fs/promises";

export function vipRoutesText(vips: readonly string[]): string {
  const header = "# Written by natlb (config bgp.routesFile): the VIPs this instance serves. Do not edit.\n";
  return header + [...vips].sort().map((vip) => `route ${vip}/32 blackhole;\n`).join("");
}

/** Replaces the file in one step (a new file renamed over it), so BIRD never reads half of it. */
export async function writeVipRoutes(path: string, vips: readonly string[]): Promise<void> {
  const next = `${path}.natlb-${process.pid}`;
  await writeFile(next, vipRoutesText(vips), { mode: 0o644 });
  await rename(next, path);
}

// The one step that needs CAP_NET_ADMIN: make the kernel leave to natlb the frames natlb owns, since an
// AF_PACKET ring sees frames but cannot take them away from the kernel.
//   - the ownership table (src/kernel/ownershipRuleset.ts): frames to a VIP on the client side and the
//     replies of natlb's flows on the backend side are marked "for another host" at ingress, so the
//     kernel's IP stack drops its copy at once while natlb's rings take them; everything else, the
//     reals' own traffic included, goes through the kernel's normal path;
//   - `ip route add blackhole VIP/32`: the gateway's own traffic to a VIP, and a VIP's traffic arriving
//     on other interfaces, is dropped instead of forwarded (a local VIP would make the kernel answer
//     with RST; forwarding stays on for everything else).
// Routes carry protocol 199 and the table has natlb's name, so set-up is idempotent (leftovers of a
// crashed run are removed first) and undo removes exactly what natlb made and nothing else.
import type { ServiceConfig } from "../config";
import { KernelSetupError } from "../errors";
import { ip, listRoutes, listRules } from "../gateway/iproute";
import { nft, nftDeleteTableIfPresent, nftTableExists } from "../gateway/nftables";
import { loadNative } from "../native";
import { OWNERSHIP_TABLE, VIP_SET, ownershipRuleset, type OwnershipPlan } from "./ownershipRuleset";

export const NATLB_ROUTE_PROTOCOL = "199";

export type KernelPlan = OwnershipPlan;

/** What the kernel needs for a set of services on these interfaces and a flow map of this size. */
export function planFor(
  services: readonly ServiceConfig[],
  interfaces: { client: readonly string[]; backend: readonly string[] },
  flowCapacity: number,
): KernelPlan {
  return {
    vips: [...new Set(services.map((s) => s.vip))].sort(),
    clientInterfaces: [...interfaces.client],
    backendInterfaces: [...interfaces.backend],
    claimCapacity: claimCapacityFor(flowCapacity),
  };
}

/**
 * Room in the kernel's list of claimed replies: one per flow, and as many again (at least a million)
 * for released claims, which count against the set's size until the kernel's garbage collection runs
 * (about a second): without that room a churning map (a flood evicting 100 k flows a second) would find
 * the set full and its new flows' claims silently not added. The kernel sizes the set's hash buckets
 * from it up front: 16 MiB at the default flow capacity.
 */
export function claimCapacityFor(flowCapacity: number): number {
  return flowCapacity + Math.max(flowCapacity, 1 << 20);
}

/** Everything either plan needs: installed first when moving from one plan to the other. */
export function mergePlans(a: KernelPlan, b: KernelPlan): KernelPlan {
  return { ...b, vips: [...new Set([...a.vips, ...b.vips])].sort() };
}

const { family, name } = OWNERSHIP_TABLE;

export class KernelSetup {
  private applied = false;

  /**
   * Installs the plan and removes every other natlb route, rule and claim in this namespace
   * (leftovers of a crashed run). With `keepOthers` (a daemon runs: its claims and VIPs stay),
   * nothing is removed and an existing table only gains the plan's VIPs.
   */
  async apply(plan: KernelPlan, options: { keepOthers?: boolean } = {}): Promise<void> {
    try {
      await this.installRoutes(plan, options.keepOthers ?? false);
      if (options.keepOthers && (await nftTableExists(family, name, VIP_SET))) {
        await this.addVips(plan.vips);
      } else {
        // One transaction: the old table (and its claims) goes as the new one comes.
        await nft(["-f", "-"], `add table ${family} ${name}\ndelete table ${family} ${name}\n${ownershipRuleset(plan, replyClaimFacts())}`);
      }
      if (!options.keepOthers) await removeLegacyRules();
      this.applied = true;
    } catch (error) {
      throw kernelError(error);
    }
  }

  /**
   * Moves the installed state to a new plan without a gap: new VIPs are added before old ones go, and
   * the claims of live flows stay. The interfaces never change while natlb runs.
   */
  async update(plan: KernelPlan): Promise<void> {
    if (!this.applied) return;  // undone (stopped) or never applied: nothing to move
    try {
      await this.installRoutes(plan, false);
      await this.addVips(plan.vips);
      const installed = await installedVips();
      const gone = installed.filter((vip) => !plan.vips.includes(vip));
      if (gone.length > 0) await nft(["delete", "element", family, name, VIP_SET, `{ ${gone.join(", ")} }`]);
    } catch (error) {
      throw kernelError(error);
    }
  }

  /** Whether the ownership table is still there (an operator's `nft flush ruleset` removes it). */
  async intact(): Promise<boolean> {
    return !this.applied || (await nftTableExists(family, name, VIP_SET));
  }

  async undo(): Promise<void> {
    if (!this.applied) return;
    this.applied = false;
    await removeNatlbKernelState();
  }

  private async installRoutes(plan: KernelPlan, keepOthers: boolean): Promise<void> {
    const wanted = new Set(plan.vips.map((vip) => `${vip}/32`));
    for (const prefix of wanted) await ip(["route", "replace", "blackhole", prefix, "proto", NATLB_ROUTE_PROTOCOL]);
    if (keepOthers) return;
    for (const route of await listRoutes(["-4", "route", "show", "table", "main", "proto", NATLB_ROUTE_PROTOCOL])) {
      const prefix = route.dst.includes("/") ? route.dst : `${route.dst}/32`;
      if (!wanted.has(prefix)) await ip(["route", "del", "blackhole", prefix, "proto", NATLB_ROUTE_PROTOCOL]);
    }
  }

  private async addVips(vips: readonly string[]): Promise<void> {
    if (vips.length > 0) await nft(["add", "element", family, name, VIP_SET, `{ ${vips.join(", ")} }`]);
  }
}

function replyClaimFacts() {
  return loadNative().replyClaims();
}

async function installedVips(): Promise<string[]> {
  const listing = JSON.parse(await nft(["-j", "list", "set", family, name, VIP_SET])) as {
    nftables: Array<{ set?: { elem?: unknown[] } }>;
  };
  const elements = listing.nftables.find((entry) => entry.set)?.set?.elem ?? [];
  return elements.filter((e): e is string => typeof e === "string");
}

function kernelError(error: unknown): KernelSetupError {
  return new KernelSetupError(
    `kernel set-up failed (${(error as Error).message}): natlb needs CAP_NET_ADMIN for its routes and its nftables table, ` +
      "and the nft command (nftables); run as root or grant the capability",
    { cause: error },
  );
}

/** Policy rules of natlb versions before the ownership table (protocol 199): removed wherever found. */
async function removeLegacyRules(): Promise<void> {
  for (const rule of await listRules()) {
    if (rule.protocol !== NATLB_ROUTE_PROTOCOL) continue;
    await ip(["-4", "rule", "del", "pref", String(rule.priority), "protocol", NATLB_ROUTE_PROTOCOL]).catch(() => undefined);
  }
}

/** Deletes every route and rule tagged with natlb's protocol number, and natlb's table, in this namespace. */
export async function removeNatlbKernelState(): Promise<void> {
  await ip(["-4", "route", "flush", "table", "main", "proto", NATLB_ROUTE_PROTOCOL]).catch(() => undefined);
  await removeLegacyRules();
  await nftDeleteTableIfPresent(family, name).catch(() => undefined);
}

// The one step that needs CAP_NET_ADMIN (DESIGN.md section 3): keep the kernel's hands off the frames
// the balancer owns, since an AF_PACKET tap sees frames but cannot take them away from the kernel.
//   - `ip route add blackhole VIP/32`: the kernel silently drops its copy of client frames to a VIP
//     (a local VIP would make it answer with RST; forwarding stays on for everything else);
//   - `ip rule add iif <backend> ipproto <p> sport <rport> blackhole`: the kernel drops its copy of
//     the real servers' replies. Replies to the gateway itself (health checks) still reach it: the
//     `local` table is looked up at priority 0, before these rules. Replies of direct connections to
//     RIP:rport are forwarded by the balancer itself (see native/engine/worker.cc, passThrough).
// Every route and rule carries protocol 199, so set-up is idempotent (leftovers of a crashed run are
// removed first) and undo removes exactly what natlb made and nothing else.
import type { RealConfig, ServiceConfig } from "./config";
import { KernelSetupError } from "./errors";
import { ip, listRoutes, listRules } from "./gateway/iproute";

export const NATLB_ROUTE_PROTOCOL = "199";
const FIRST_RULE_PRIORITY = 31000;

/**
 * Frames from real servers that the kernel must leave to natlb, on one backend interface: TCP from a
 * real-server port; UDP from a real server's address (any port, and every fragment: a later fragment
 * carries no port, so a port rule would let the kernel forward it un-rewritten).
 */
export type ReplyPath =
  | { interface: string; protocol: "tcp"; sourcePort: number }
  | { interface: string; protocol: "udp"; source: string };

export interface KernelPlan {
  vips: string[];
  replyPaths: ReplyPath[];
}

/**
 * What the kernel must drop for a set of services: its copy of client frames to every VIP, and of
 * the replies from every real-server port arriving on a backend interface. `realsOf` may add reals
 * that are gone from the configuration but still have connections.
 */
export function planFor(
  services: readonly ServiceConfig[],
  backendInterfaces: readonly string[],
  realsOf: (service: ServiceConfig) => readonly RealConfig[] = (service) => service.reals,
): KernelPlan {
  return {
    vips: services.map((s) => s.vip),
    replyPaths: services.flatMap((s) =>
      realsOf(s).flatMap((r) =>
        backendInterfaces.map((name): ReplyPath =>
          s.protocol === "tcp"
            ? { interface: name, protocol: "tcp", sourcePort: r.port }
            : { interface: name, protocol: "udp", source: r.ip },
        ),
      ),
    ),
  };
}

export class KernelSetup {
  private applied = false;

  /**
   * Installs the plan's routes and rules and removes every other natlb route and rule in this
   * namespace (leftovers of a crashed run), never taking away one that stays: safe while traffic
   * flows. With `keepOthers`, nothing is removed (a running daemon may still need it).
   */
  async apply(plan: KernelPlan, options: { keepOthers?: boolean } = {}): Promise<void> {
    try {
      await this.converge(plan, options.keepOthers ?? false);
      this.applied = true;
    } catch (error) {
      throw kernelError(error);
    }
  }

  /**
   * Moves the installed state to a new plan without a gap: what stays is never removed, new routes
   * and rules are added before old ones go. (A moment without the reply-path rule would let the
   * kernel forward un-rewritten replies, and clients would answer them with RSTs.)
   */
  async update(plan: KernelPlan): Promise<void> {
    if (!this.applied) return;  // undone (stopped) or never applied: nothing to move
    try {
      await this.converge(plan, false);
    } catch (error) {
      throw kernelError(error);
    }
  }

  async undo(): Promise<void> {
    if (!this.applied) return;
    this.applied = false;
    await removeNatlbKernelState();
  }

  private async converge(plan: KernelPlan, keepOthers: boolean): Promise<void> {
    const wantedVips = new Set(plan.vips.map((vip) => `${vip}/32`));
    for (const vip of wantedVips) await ip(["route", "replace", "blackhole", vip, "proto", NATLB_ROUTE_PROTOCOL]);
    const installedRoutes = await listRoutes(["-4", "route", "show", "table", "main", "proto", NATLB_ROUTE_PROTOCOL]);
    for (const route of installedRoutes) {
      const prefix = route.dst.includes("/") ? route.dst : `${route.dst}/32`;
      if (!keepOthers && !wantedVips.has(prefix)) await ip(["route", "del", "blackhole", prefix, "proto", NATLB_ROUTE_PROTOCOL]);
    }

    const keyOf = (p: ReplyPath) =>
      p.protocol === "tcp" ? `${p.interface}/tcp/${p.sourcePort}/` : `${p.interface}/udp//${p.source}`;
    const wanted = new Map(plan.replyPaths.map((p) => [keyOf(p), p]));
    const installed = (await listRules()).filter((rule) => rule.protocol === NATLB_ROUTE_PROTOCOL);
    const installedKeys = new Map(
      installed.map((rule) => [
        `${String(rule.iif)}/${String(rule.ipproto)}/${rule.sport === undefined ? "" : String(rule.sport)}/${
          rule.src === undefined || rule.src === "all" ? "" : String(rule.src)
        }`,
        rule.priority,
      ]),
    );
    const used = new Set(installed.map((rule) => rule.priority));
    let priority = FIRST_RULE_PRIORITY;
    for (const [key, path] of wanted) {
      if (installedKeys.has(key)) continue;
      while (used.has(priority)) priority += 1;
      used.add(priority);
      const match = path.protocol === "tcp" ? ["sport", String(path.sourcePort)] : ["from", `${path.source}/32`];
      await ip([
        "rule", "add", "pref", String(priority), "iif", path.interface, "ipproto", path.protocol, ...match,
        "blackhole", "protocol", NATLB_ROUTE_PROTOCOL,
      ]);
    }
    for (const [key, rulePriority] of installedKeys) {
      if (!keepOthers && !wanted.has(key)) await ip(["-4", "rule", "del", "pref", String(rulePriority), "protocol", NATLB_ROUTE_PROTOCOL]);
    }
  }
}

/** Everything either plan needs: installed first when moving from one plan to the other. */
export function mergePlans(a: KernelPlan, b: KernelPlan): KernelPlan {
  return { vips: [...new Set([...a.vips, ...b.vips])], replyPaths: [...a.replyPaths, ...b.replyPaths] };
}

function kernelError(error: unknown): KernelSetupError {
  return new KernelSetupError(
    `kernel set-up failed (${(error as Error).message}): natlb needs CAP_NET_ADMIN for its routes and rules; run as root or grant the capability`,
    { cause: error },
  );
}

/** Deletes every route and rule tagged with natlb's protocol number in this namespace. */
export async function removeNatlbKernelState(): Promise<void> {
  await ip(["-4", "route", "flush", "table", "main", "proto", NATLB_ROUTE_PROTOCOL]).catch(() => undefined);
  for (const rule of await listRules()) {
    if (rule.protocol !== NATLB_ROUTE_PROTOCOL) continue;
    await ip(["-4", "rule", "del", "pref", String(rule.priority), "protocol", NATLB_ROUTE_PROTOCOL]).catch(() => undefined);
  }
}

// Which interfaces the balancer works on and in which role, derived from the routing table unless the
// configuration names them: the interfaces that carry the routes to the real servers face the
// backends; every other up, non-loopback IPv4 interface faces clients. Only "nat" and "fullnat" reals make
// an interface a backend (a real's own forwarding counts, config reals[].forwarding): a "dr" real is
// reached on whichever managed interface its subnet is on, so a
// one-armed direct-routing balancer (clients and reals on one interface) sees that interface as a
// client one, where the VIPs' frames are claimed.
import { inPrefix } from "../addresses";
import { realForwarding, type ForwardingMode, type NatlbConfig, type ReceivePathConfig, type ServiceConfig } from "../config";
import { ConfigError } from "../errors";
import type { NativeInterface, NativeNeighbour, NativeRoute } from "../native";
import { listAddresses, listLinks, listNeighbours, listRoutes, routeGet, type AddressInfo, type LinkInfo } from "./iproute";

export interface GatewayView {
  interfaces: NativeInterface[];
  routes: NativeRoute[];
  neighbours: NativeNeighbour[];
  /** Every IPv4 address of the gateway (all interfaces, lo included). */
  localAddresses: string[];
}

function describe(
  link: LinkInfo, role: "client" | "backend", addresses: NativeInterface["addresses"], receivePath: ReceivePathConfig,
): NativeInterface {
  if (!link.address || link.link_type !== "ether") {
    throw new ConfigError(
      "interfaces",
      `interface ${link.ifname} is not an Ethernet interface: natlb works on Ethernet (veth, NICs, bridges); name other interfaces in "interfaces"`,
    );
  }
  const path = Object.hasOwn(receivePath.interfaces, link.ifname) ? receivePath.interfaces[link.ifname]! : receivePath.default;
  return { name: link.ifname, ifindex: link.ifindex, mac: link.address, role, addresses, receivePath: path };
}

export async function discoverGateway(config: NatlbConfig): Promise<GatewayView> {
  const [links, addresses] = await Promise.all([listLinks(), listAddresses()]);
  const byName = new Map(links.map((l) => [l.ifname, l]));
  const addressesOf = (ifname: string) =>
    (addresses.find((a) => a.ifname === ifname)?.addr_info ?? [])
      .filter((a) => a.family === "inet")
      .map((a) => ({ ip: a.local, prefixLength: a.prefixlen }));

  refuseLocalAddresses(config, addresses);

  let clientNames: string[];
  let backendNames: string[];
  if (config.interfaces) {
    clientNames = [...config.interfaces.client];
    backendNames = [...config.interfaces.backend];
    for (const [field, names] of [["client", clientNames], ["backend", backendNames]] as const) {
      names.forEach((name, i) => {
        if (!byName.has(name)) {
          throw new ConfigError(`interfaces.${field}[${i}]`, `no interface named "${name}" in this network namespace: check \`ip link\``);
        }
      });
    }
  } else {
    const backends = new Set<string>();
    // One route lookup (an `ip route get`) per distinct address: thousands of services share reals.
    const routes = new Map<string, ReturnType<typeof routeGet>>();
    for (const [s, service] of config.services.entries()) {
      for (const { real, path } of backendsOf(service, s)) {
        if (realForwarding(service, real) === "dr") continue;
        if (!routes.has(real.ip)) routes.set(real.ip, routeGet(real.ip));
        const route = await routes.get(real.ip)!.catch(() => undefined);
        if (!route?.dev || route.type === "unreachable" || route.type === "blackhole") {
          throw new ConfigError(`${path}.ip`, `no route to real server ${real.ip}: add a route or name the interfaces in "interfaces"`);
        }
        backends.add(route.dev);
      }
    }
    backendNames = [...backends];
    clientNames = links
      .filter((l) => l.ifname !== "lo" && l.flags.includes("UP") && !backends.has(l.ifname) && addressesOf(l.ifname).length > 0)
      .map((l) => l.ifname);
  }
  if (backendNames.length === 0 && config.services.some((s, i) => backendsOf(s, i).some(({ real }) => realForwarding(s, real) === "nat"))) {
    throw new ConfigError("interfaces.backend", "no interface leads to the real servers: name one in interfaces.backend");
  }
  if (clientNames.length === 0 && config.services.length > 0) {
    throw new ConfigError("interfaces.client", "no client-facing interface found: name one in interfaces.client");
  }
  const interfaces = [
    ...clientNames.map((name) => describe(byName.get(name)!, "client", addressesOf(name), config.receivePath)),
    ...backendNames.map((name) => describe(byName.get(name)!, "backend", addressesOf(name), config.receivePath)),
  ];
  checkDirectRealsOnLink(config, interfaces);
  checkFullNatLocalAddresses(config, interfaces);
  for (const name of Object.keys(config.receivePath.interfaces)) {
    if (!interfaces.some((i) => i.name === name)) {
      throw new ConfigError(
        `receivePath.interfaces.${name}`,
        `"${name}" is not an interface natlb works on (it works on ${interfaces.map((i) => i.name).join(", ")}): remove it, or list it in "interfaces"`,
      );
    }
  }
  const [routes, neighbours] = await Promise.all([readRoutes(interfaces), readNeighbours(interfaces)]);
  return { interfaces, routes, neighbours, localAddresses: localAddressesOf(addresses) };
}

function localAddressesOf(addresses: AddressInfo[]): string[] {
  return addresses.flatMap((entry) => entry.addr_info.filter((a) => a.family === "inet").map((a) => a.local)).sort();
}

/** Every IPv4 address of the gateway now: the AF_XDP path leaves frames to them to the kernel. */
export async function readLocalAddresses(): Promise<string[]> {
  return localAddressesOf(await listAddresses());
}

/**
 * A VIP must not be an address of the gateway: the kernel would answer for it too (docs/architecture.md,
 * "The kernel set-up"), and a real server on the gateway itself would loop.
 */
function refuseLocalAddresses(config: NatlbConfig, addresses: AddressInfo[]): void {
  const local = new Map<string, string>();
  for (const entry of addresses) {
    for (const a of entry.addr_info) if (a.family === "inet") local.set(a.local, entry.ifname);
  }
  config.services.forEach((service, s) => {
    const owner = local.get(service.vip);
    if (owner !== undefined) {
      throw new ConfigError(
        `services[${s}].vip`,
        `${service.vip} is an address of this gateway (${owner}): a VIP must not be a local address; remove it from ${owner} or choose another VIP`,
      );
    }
    for (const { real, path } of backendsOf(service, s)) {
      const realOwner = local.get(real.ip);
      if (realOwner !== undefined) {
        throw new ConfigError(`${path}.ip`, `${real.ip} is an address of this gateway (${realOwner}): real servers must be other hosts`);
      }
    }
  });
}

/**
 * A "dr" real gets the client's frame with only the MAC changed, so natlb must reach it in one hop: it
 * must be in a directly connected subnet of an interface natlb works on. Throws a ConfigError at the
 * real's ip otherwise.
 */
export function checkDirectRealsOnLink(config: NatlbConfig, interfaces: readonly NativeInterface[]): void {
  config.services.forEach((service, s) => {
    for (const { real, path } of backendsOf(service, s)) {
      if (realForwarding(service, real) !== "dr") continue;
      const onLink = interfaces.some((i) => i.addresses.some((a) => inPrefix(real.ip, a.ip, a.prefixLength)));
      if (!onLink) {
        const subnets = interfaces.flatMap((i) => i.addresses.map((a) => `${a.ip}/${a.prefixLength} (${i.name})`)).join(", ");
        throw new ConfigError(
          `${path}.ip`,
          `${real.ip} is not on a link natlb works on (${subnets || "no addresses"}): a "dr" real must be in a directly connected subnet of one of natlb's interfaces; move it there, name its interface in "interfaces", or use "forwarding": "nat"`,
        );
      }
    }
  });
}

/**
 * A "fullnat" service's local addresses are where its reals answer: each must be an address of a backend
 * interface natlb works on, so the kernel answers ARP for it and the replies arrive where natlb claims
 * them (src/kernel/ownershipRuleset.ts). Throws a ConfigError at the address otherwise.
 */
export function checkFullNatLocalAddresses(config: NatlbConfig, interfaces: readonly NativeInterface[]): void {
  config.services.forEach((service, s) => {
    service.fullnat?.localAddresses.forEach((address, j) => {
      const owner = interfaces.find((i) => i.addresses.some((a) => a.ip === address));
      if (owner?.role === "backend") return;
      const backends = interfaces.filter((i) => i.role === "backend");
      const own = backends.flatMap((i) => i.addresses.map((a) => `${a.ip} (${i.name})`)).join(", ");
      throw new ConfigError(
        `services[${s}].fullnat.localAddresses[${j}]`,
        owner === undefined
          ? `${address} is not an address of an interface natlb works on: add it to the interface facing the reals (ip addr add ${address}/... dev <backend interface>), or use one of ${own || "the backend interfaces' addresses (none yet)"}`
          : `${address} is on ${owner.name}, which faces clients: a local address must be on an interface facing the reals (${own || "none"}), where their replies arrive`,
      );
    });
  });
}

/** The hosts a service forwards to: its reals, then its fallback real (the service's forwarding), each with its config path. */
function backendsOf(service: ServiceConfig, s: number): Array<{ real: { ip: string; forwarding?: ForwardingMode }; path: string }> {
  const reals = service.reals.map((real, r) => ({ real, path: `services[${s}].reals[${r}]` }));
  return service.fallback ? [...reals, { real: service.fallback, path: `services[${s}].fallback` }] : reals;
}

/** The main table's unicast routes over the managed interfaces, as the engine's route table. */
export async function readRoutes(interfaces: readonly NativeInterface[]): Promise<NativeRoute[]> {
  const ifindexByName = new Map(interfaces.map((i) => [i.name, i.ifindex]));
  const out: NativeRoute[] = [];
  for (const route of await listRoutes()) {
    if ((route.type && route.type !== "unicast") || !route.dev) continue;
    const ifindex = ifindexByName.get(route.dev);
    if (ifindex === undefined) continue;
    const [prefix, length] = route.dst === "default" ? ["0.0.0.0", "0"] : route.dst.split("/");
    out.push({
      prefix: prefix!,
      prefixLength: length === undefined ? 32 : Number(length),
      ifindex,
      ...(route.gateway ? { gateway: route.gateway } : {}),
    });
  }
  return out;
}

/** The kernel's resolved neighbours on the managed interfaces: a head start for the engine's ARP. */
export async function readNeighbours(interfaces: readonly NativeInterface[]): Promise<NativeNeighbour[]> {
  const ifindexByName = new Map(interfaces.map((i) => [i.name, i.ifindex]));
  return (await listNeighbours())
    .filter((n) => n.lladdr && ifindexByName.has(n.dev) && !(n.state ?? []).some((s) => s === "FAILED" || s === "INCOMPLETE"))
    .map((n) => ({ ip: n.dst, mac: n.lladdr!, ifindex: ifindexByName.get(n.dev)! }));
}

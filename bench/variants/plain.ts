// The limit: no balancer at all. The client talks to the reals' own addresses (connection i to real
// i % N) and the gateway only forwards (ip_forward=1, no netfilter, no conntrack).
import type { Variant } from "./types";

export const plainForwarding: Variant = {
  id: "plain",
  label: "plain kernel forwarding",
  setUp: async (_lab, services) => ({
    bulkTargets: services.reals.map((ip) => ({ ip, port: services.bulk.realPort })),
    smallTargets: services.reals.map((ip) => ({ ip, port: services.small.realPort })),
    pid: null,
    diagnostics: async () => ({}),
    tearDown: async () => undefined,
  }),
};

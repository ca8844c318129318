// The kernel set-up's ownership table (src/kernel/ownershipRuleset.ts): built from the addon's facts
// (marks, claim lifetime), checked by the kernel itself with `nft --check` in a lab namespace.

import test from "ava";
import { kernelPlanFor } from "../src/balancer";
import { parseConfig } from "../src/config";
import { planFor } from "../src/kernel";
import { ownershipRuleset } from "../src/kernel/ownershipRuleset";
import { loadNative, type NativeInterface } from "../src/native";
import { sbin } from "../lab/netns";
import { createLab } from "../lab/topology";

const facts = loadNative().replyClaims();

const plan = {
  vips: ["198.18.0.100", "198.18.0.101"],
  clientInterfaces: ["eth0"],
  backendInterfaces: ["eth1"],
  claimCapacity: 524288,
};

test("the addon's facts: three distinct marks and a claim lifetime the flow map renews well within", (t) => {
  t.is(new Set([facts.claimMark, facts.renewMark, facts.releaseMark]).size, 3);
  t.is(facts.lifetimeSeconds, 3600);
});

test("the table marks VIP frames on client interfaces and claimed replies on backend ones, and keeps the claims from natlb's marks", (t) => {
  const text = ownershipRuleset(plan, facts);
  t.regex(text, /^table netdev natlb \{/);
  t.regex(text, /set vips \{ type ipv4_addr; elements = \{ 198\.18\.0\.100, 198\.18\.0\.101 \}; \}/);
  t.regex(text, /set replies \{ [^}]*size 524288; flags dynamic,timeout; timeout 3600s; \}/);
  t.regex(text, /chain client_ingress \{ type filter hook ingress devices = \{ "eth0" \}[^\n]*\n\s+ip daddr @vips meta pkttype set other/);
  t.regex(text, /chain backend_ingress \{ type filter hook ingress devices = \{ "eth1" \}/);
  t.regex(text, /ip frag-off & 0x1fff == 0 ip saddr \. ip protocol \. th sport \. ip daddr \. th dport @replies meta pkttype set other/);
  const mark = (value: number) => `0x${value.toString(16).padStart(8, "0")}`;
  t.regex(text, new RegExp(`meta mark ${mark(facts.claimMark)} meta l4proto \\{ tcp, udp \\} ip frag-off & 0x1fff == 0 add @replies`));
  t.regex(text, new RegExp(`meta mark ${mark(facts.renewMark)} ip frag-off & 0x1fff == 0 update @replies \\{[^}]*\\} drop`));
  t.regex(text, new RegExp(`meta mark ${mark(facts.releaseMark)} ip frag-off & 0x1fff == 0 delete @replies \\{[^}]*\\} drop`));
});

test("without VIPs or without backend interfaces the table still builds, without the parts it cannot have", (t) => {
  const bare = ownershipRuleset({ ...plan, vips: [], backendInterfaces: [] }, facts);
  t.regex(bare, /set vips \{ type ipv4_addr; \}/);
  t.notRegex(bare, /backend_ingress|backend_egress/);
  t.regex(bare, /client_ingress/);
});

test("planFor: each VIP once, sorted; room for the flow map and a million released claims; the daemon and kernel-setup plan alike", (t) => {
  const config = parseConfig({
    flowCapacity: 1000,
    services: [
      { vip: "198.18.0.101", port: 80, reals: [{ ip: "198.18.1.11" }] },
      { vip: "198.18.0.100", port: 80, reals: [{ ip: "198.18.1.11" }] },
      { vip: "198.18.0.100", port: 53, protocol: "udp", reals: [{ ip: "198.18.1.11" }] },
    ],
  });
  const interfaces = [
    { name: "eth0", role: "client" }, { name: "eth2", role: "client" }, { name: "eth1", role: "backend" },
  ] as NativeInterface[];
  const expected = { vips: ["198.18.0.100", "198.18.0.101"], clientInterfaces: ["eth0", "eth2"], backendInterfaces: ["eth1"], claimCapacity: 1000 + 1048576 };
  t.deepEqual(kernelPlanFor(config, interfaces), expected);
  t.deepEqual(planFor(config.services, { client: ["eth0", "eth2"], backend: ["eth1"] }, 1000), expected);
  t.is(planFor([], { client: [], backend: [] }, 4_000_000).claimCapacity, 8_000_000, "twice a large map");
});

test("the kernel accepts the table as generated (nft --check in a lab gateway)", async (t) => {
  const lab = await createLab({ reals: 1, offloads: true, prefix: "ow" });
  try {
    const check = await lab.tryExec(lab.gateway.ns, sbin("nft"), ["--check", "-f", "/dev/stdin"], { input: ownershipRuleset(plan, facts) });
    t.is(check.code, 0, check.stderr);
    const broken = await lab.tryExec(lab.gateway.ns, sbin("nft"), ["--check", "-f", "/dev/stdin"], {
      input: ownershipRuleset({ ...plan, vips: ["198.18.0.300"] }, facts),
    });
    t.not(broken.code, 0, "the check can fail: an address that is none");
  } finally {
    await lab.destroy();
  }
});

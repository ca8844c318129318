// natlb's side of BGP (src/bgp): the routes file it writes, and the announcer against a real BIRD 2
// (no network protocol in its config: it only reads the routes file, so it touches no interface or
// route), over BIRD's control socket: what BIRD's table holds after follow() and stop(), the counts,
// and a missing BIRD counted and retried.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { BIRD_BIN } from "../lab/ecmpTopology";
import { waitUntil } from "../lab/wait";
import { VipAnnouncer, birdCommand, vipRoutesText } from "../src/bgp";
import { BgpError } from "../src/errors";
import { silentLogger } from "../src/log";

test("the routes file: one blackhole /32 per VIP, sorted, and a comment", (t) => {
  t.is(vipRoutesText(["198.18.3.101", "198.18.3.100"]).split("\n").filter((l) => !l.startsWith("#")).join("\n"), "route 198.18.3.100/32 blackhole;\nroute 198.18.3.101/32 blackhole;\n");
  t.true(vipRoutesText([]).startsWith("#"));
  t.notRegex(vipRoutesText([]), /^route /m);
});

async function withBird(t: import("ava").ExecutionContext, body: (dir: string, socket: string, routesFile: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "natlb-bird-"));
  const socket = join(dir, "bird.ctl");
  const routesFile = join(dir, "vips.conf");
  writeFileSync(routesFile, "");
  writeFileSync(join(dir, "bird.conf"), `router id 198.18.1.2;\nprotocol static natlb_vips {\n  ipv4;\n  include "${routesFile}";\n}\n`);
  let bird: ChildProcess | undefined;
  try {
    bird = spawn(BIRD_BIN, ["-f", "-c", join(dir, "bird.conf"), "-s", socket, "-P", join(dir, "bird.pid")], { stdio: "ignore" });
    await waitUntil("BIRD to answer", () => birdCommand(socket, "show status", 1000).then(() => true, () => false), 10_000, 50);
    await body(dir, socket, routesFile);
  } finally {
    bird?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

const routesInBird = async (socket: string) => (await birdCommand(socket, "show route")).lines.join("\n").match(/198\.18\.\d+\.\d+\/32/g)?.sort() ?? [];

test.serial("the announcer has BIRD announce exactly the VIPs it follows, and nothing after stop", async (t) => {
  await withBird(t, async (_dir, socket, routesFile) => {
    const changes: string[] = [];
    const announcer = new VipAnnouncer({ birdSocket: socket, routesFile, withdrawGraceMs: 300 }, { logger: silentLogger, onChange: (vip, up) => changes.push(`${vip} ${up ? "up" : "down"}`) });
    announcer.follow(["198.18.3.100", "198.18.3.101"]);
    await waitUntil("both VIPs in BIRD", async () => (await routesInBird(socket)).length === 2, 10_000, 50);
    t.deepEqual(await routesInBird(socket), ["198.18.3.100/32", "198.18.3.101/32"]);
    announcer.follow(["198.18.3.101"]);
    await waitUntil("one VIP left", async () => (await routesInBird(socket)).join() === "198.18.3.101/32", 10_000, 50);
    await waitUntil("the status to follow", () => announcer.status().announced.join() === "198.18.3.101", 5000, 20);
    const status = announcer.status();
    t.is(status.announcements, 2);
    t.is(status.withdrawals, 1);
    t.is(status.failures, 0);
    const stopping = Date.now();
    await announcer.stop();
    t.true(Date.now() - stopping >= 300, "stop() waits the grace after the withdrawal");
    t.deepEqual(await routesInBird(socket), []);
    t.notRegex(readFileSync(routesFile, "utf8"), /^route /m);
    t.deepEqual(changes, ["198.18.3.100 up", "198.18.3.101 up", "198.18.3.100 down", "198.18.3.101 down"]);
  });
});

test.serial("a BIRD that is not there is counted, named, and retried until it answers", async (t) => {
  await withBird(t, async (dir, socket, routesFile) => {
    const late = join(dir, "late.ctl");  // nothing listens here yet
    const error = await t.throwsAsync(birdCommand(late, "configure"), { instanceOf: BgpError });
    t.regex(error!.message, /cannot talk to BIRD on .*late\.ctl.*start bird/);
    const announcer = new VipAnnouncer({ birdSocket: late, routesFile, withdrawGraceMs: 0 }, { logger: silentLogger, retryMs: 100 });
    announcer.follow(["198.18.3.100"]);
    await waitUntil("two failed tries", () => announcer.status().failures >= 2, 5000, 20);
    t.deepEqual(announcer.status().pending, ["198.18.3.100"]);
    t.regex(announcer.status().lastError ?? "", /late\.ctl/);
    // BIRD appears at that path: the next try succeeds.
    execFileSync("ln", ["-s", socket, late]);
    await waitUntil("the VIP in BIRD", async () => (await routesInBird(socket)).length === 1, 5000, 20);
    await waitUntil("the status to follow", () => announcer.status().pending.length === 0, 5000, 20);
    t.is(announcer.status().lastError, undefined);
    await announcer.stop();
    t.deepEqual(await routesInBird(socket), []);
  });
});

// The admin surface of a real daemon in the lab, after real traffic: the control socket serves the
// same metrics as the HTTP listener, and every change, through the CLI or SIGHUP, is in the daemon's
// log with who made it and what it changed.
import test from "ava";
import { writeFileSync } from "node:fs";
import { blobUrl, runDownload } from "../lab/download";
import { waitUntil } from "../lab/wait";
import { REAL_PORT, SERVICE_PORT, tcpService, withNatLab } from "./support/lab";

const MiB = 1024 * 1024;

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** The daemon's JSON log records with `audit` set. */
function auditRecords(output: string): Record<string, unknown>[] {
  return output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((record) => record["audit"] !== undefined);
}

test("metrics on the control socket and the listener agree; CLI and SIGHUP changes are logged with who and what", async (t) => {
  const metrics = { listen: "127.0.0.1:9910" };
  await withNatLab(t, { offloads: true, config: (lab) => ({ services: [tcpService(lab, [2, 1, 1])], metrics }) }, async ({ lab, natlb }) => {
    const summary = await runDownload(lab, { url: blobUrl(lab.vip, SERVICE_PORT, MiB, "admin"), conns: 2, count: 4, localPortBase: 29000 });
    t.is(summary.failed, 0);
    const [r1, r2, r3] = lab.reals.map((r) => `${r.ip}:${REAL_PORT}`);
    const weightSeries = (real: string) => `natlb_real_weight{vip="${lab.vip}",port="80",protocol="tcp",real="${real}"}`;

    const onSocket = (await lab.exec(lab.gateway.ns, "curl", ["-s", "--max-time", "10", "--unix-socket", natlb!.socket, "http://natlb/metrics"])).stdout;
    const fetch = `require("http").get("http://127.0.0.1:9910/metrics", (r) => { let b = ""; r.on("data", (c) => (b += c)); r.on("end", () => process.stdout.write(b)); })`;
    const overHttp = (await lab.exec(lab.gateway.ns, process.execPath, ["-e", fetch])).stdout;
    t.is(sample(onSocket, weightSeries(r1!)), 2);
    t.is(sample(overHttp, weightSeries(r1!)), 2);
    // newFlows: the download's connections, whichever path scheduled them (the kernel does by default).
    const newFlowsSocket = sample(onSocket, 'natlb_frames_total{counter="newFlows"}') ?? 0;
    t.true(newFlowsSocket >= 4, "the download's connections are counted");
    t.true((sample(overHttp, 'natlb_frames_total{counter="newFlows"}') ?? 0) >= newFlowsSocket, "one counter, scraped later: never lower");
    const fromCli = await natlb!.cli(["metrics"]);
    t.is(fromCli.code, 0, fromCli.stderr);
    t.is(sample(fromCli.stdout, weightSeries(r1!)), 2);

    // A change through the CLI: logged with the CLI's uid and pid, the route, the real and its weight.
    const weight = await natlb!.cli(["real", "weight", `${lab.vip}:${SERVICE_PORT}`, lab.reals[1]!.ip, "0"]);
    t.is(weight.code, 0, weight.stderr);
    const cliRecord = auditRecords(natlb!.output()).find((r) => r["route"] === "PUT /reals");
    t.like(cliRecord, {
      audit: "change",
      result: "applied",
      by: { via: "control socket", uid: 0 },
      change: { service: `${lab.vip}:${SERVICE_PORT}/tcp`, real: r2, weight: "1->0" },
    });
    t.true(Number((cliRecord?.["by"] as { pid?: unknown } | undefined)?.pid) > 1, "the CLI process's pid");

    // A reload by SIGHUP: the sender is not knowable, what changed is.
    writeFileSync(natlb!.configPath, JSON.stringify({ services: [tcpService(lab, [3, 1])], metrics }));
    natlb!.child.kill("SIGHUP");
    await waitUntil("the SIGHUP reload to be logged", () => /SIGHUP reload applied/.test(natlb!.output()), 10_000, 100);
    const hup = auditRecords(natlb!.output()).find((r) => r["route"] === "SIGHUP reload");
    t.like(hup, { audit: "change", result: "applied", by: { via: "SIGHUP" } });
    t.regex(JSON.stringify(hup?.["by"]), /unknown/);
    t.deepEqual(hup?.["change"], {
      servicesAdded: [],
      servicesRemoved: [],
      servicesChanged: [{ service: `${lab.vip}:${SERVICE_PORT}/tcp`, realsRemoved: [r3], weights: [`${r1} 2->3`, `${r2} 0->1`], realsReordered: true }],
      servicesUnchanged: 0,
      settingsChanged: [],
    });
    t.deepEqual((await natlb!.status()).services[0]!.reals.map((r) => r.weight), [3, 1]);
  });
});

// The progress line of the demo and the bench (lab/progressLine.ts): the line itself, short names of
// the reals, shares, and how it is drawn on a terminal and elsewhere; and the sampler around a
// download (lab/downloadProgress.ts) against a fake daemon.
import test from "ava";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { withDownloadProgress } from "../lab/downloadProgress";
import { startControlServer } from "../src/control";
import { formatProgressLine, formatRate, ProgressLine, sharesOf, shortRealNames, type ProgressSnapshot } from "../lab/progressLine";

const MiB = 1024 * 1024;

const snapshot: ProgressSnapshot = {
  label: "download",
  bytesDone: 412 * MiB,
  bytesTotal: 1024 * MiB,
  bitsPerSecond: 3.21e9,
  shares: [
    { name: ".11", share: 0.5 },
    { name: ".12", share: 0.25 },
    { name: ".13", share: 0.25 },
  ],
};

test("progress line: bar, bytes of total, percent, rate, each real's share", (t) => {
  t.is(
    formatProgressLine(snapshot),
    "download  [########------------]  412 MiB/1.00 GiB   40%  3.21 Gbit/s  reals .11 50% .12 25% .13 25%",
  );
});

test("progress line: no shares without a balancer, no rate before two samples, clamped past the total", (t) => {
  t.is(
    formatProgressLine({ label: "kernelNat", bytesDone: 2000 * MiB, bytesTotal: 1024 * MiB, bitsPerSecond: null, shares: null }),
    "kernelNat  [####################]  1.00 GiB/1.00 GiB  100%  -- Gbit/s",
  );
  t.is(formatRate(250e6), "250 Mbit/s");
});

test("progress line: cut to the terminal's width, never wrapped", (t) => {
  const line = formatProgressLine(snapshot, 40);
  t.is(line.length, 40);
  t.true(line.endsWith("…"));
});

test("short names of the reals drop what they share in front", (t) => {
  t.deepEqual(shortRealNames(["198.18.1.11", "198.18.1.12", "198.18.1.13"]), [".11", ".12", ".13"]);
  t.deepEqual(shortRealNames(["10.0.0.1", "10.1.0.1"]), [".0.0.1", ".1.0.1"]);
  t.deepEqual(shortRealNames(["198.18.1.11"]), ["198.18.1.11"]);
  t.deepEqual(shortRealNames(["198.18.1.11", "198.18.1.11"]), [".11", ".11"]);
});

test("shares from connection counts; none at all is all zero", (t) => {
  t.deepEqual(sharesOf([{ name: "a", count: 3 }, { name: "b", count: 1 }]), [{ name: "a", share: 0.75 }, { name: "b", share: 0.25 }]);
  t.deepEqual(sharesOf([{ name: "a", count: 0 }]), [{ name: "a", share: 0 }]);
});

function fakeStream(isTTY: boolean): { isTTY: boolean; columns: number; written: string[]; write(text: string): boolean } {
  const written: string[] = [];
  return { isTTY, columns: 200, written, write: (text: string) => written.push(text) > 0 };
}

test("progress line on a terminal: redrawn in place, erased at the end", (t) => {
  const stream = fakeStream(true);
  const line = new ProgressLine(stream);
  line.update(snapshot);
  line.update({ ...snapshot, bytesDone: 512 * MiB });
  line.clear();
  t.is(stream.written.length, 3);
  t.true(stream.written[0]!.startsWith("\r\x1b[2Kdownload  [########"));
  t.true(stream.written[1]!.includes("512 MiB/1.00 GiB"));
  t.false(stream.written.some((w) => w.includes("\n")));
  t.is(stream.written[2], "\r\x1b[2K");
});

test("progress line elsewhere: plain lines, at most one per interval", (t) => {
  const stream = fakeStream(false);
  let now = 0;
  const line = new ProgressLine(stream, { plainEveryMs: 5000, now: () => now });
  line.update(snapshot);
  now = 1000;
  line.update(snapshot);
  now = 4999;
  line.update(snapshot);
  now = 5000;
  line.update({ ...snapshot, bytesDone: 1024 * MiB });
  line.clear();
  t.deepEqual(stream.written, [`${formatProgressLine(snapshot, 200)}\n`, `${formatProgressLine({ ...snapshot, bytesDone: 1024 * MiB }, 200)}\n`]);
});

test("the sampler draws bytes since its start and the shares of the daemon's status, then erases its line", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "natlb-progress-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const socket = join(dir, "natlb.sock");
  const reals = [
    { ip: "198.18.1.11", port: 8080, weight: 1, up: true, activeConns: 3, inactiveConns: 0 },
    { ip: "198.18.1.12", port: 8080, weight: 1, up: true, activeConns: 1, inactiveConns: 0 },
  ];
  const other = { ip: "198.18.1.13", port: 8081, weight: 1, up: true, activeConns: 50, inactiveConns: 0 };
  const server = await startControlServer(socket, {
    "GET /status": () => ({
      services: [
        { vip: "198.18.0.100", port: 80, protocol: "tcp", scheduler: "wrr", reals },
        { vip: "198.18.0.100", port: 81, protocol: "tcp", scheduler: "wrr", reals: [other] },
      ],
    }),
  });
  t.teardown(() => server.close());
  let received = 5000 * MiB; // the interface had traffic before: progress counts from the first reading
  const stream = fakeStream(true);
  const result = await withDownloadProgress(
    {
      receivedBytes: async () => (received += 64 * MiB),
      label: "download",
      bytesTotal: 1024 * MiB,
      controlSocket: socket,
      service: { vip: "198.18.0.100", port: 80 },
      stream,
      intervalMs: 30,
    },
    async () => {
      await sleep(400);
      return "downloaded";
    },
  );
  t.is(result, "downloaded");
  const lines = stream.written.filter((w) => w.length > "\r\x1b[2K".length);
  t.true(lines.length >= 2, JSON.stringify(stream.written));
  t.regex(lines[0]!, /^\r\x1b\[2Kdownload {2}\[#-+\] {2}64 MiB\/1\.00 GiB/);
  t.true(lines.every((l) => l.endsWith("reals .11 75% .12 25%")), lines.join("\n"));
  t.regex(lines[1]!, /Gbit\/s|Mbit\/s/);
  t.is(stream.written[stream.written.length - 1], "\r\x1b[2K");
});

test("the sampler without a daemon shows no shares, and disabled it draws nothing", async (t) => {
  let received = 0;
  const stream = fakeStream(true);
  await withDownloadProgress(
    { receivedBytes: async () => (received += MiB), label: "kernelNat", bytesTotal: 16 * MiB, stream, intervalMs: 30 },
    () => sleep(200),
  );
  t.true(stream.written.length >= 2);
  t.false(stream.written.some((w) => w.includes("reals")));
  const silent = fakeStream(true);
  await withDownloadProgress(
    { receivedBytes: async () => (received += MiB), label: "x", bytesTotal: 1, stream: silent, enabled: false },
    () => sleep(100),
  );
  t.deepEqual(silent.written, []);
});

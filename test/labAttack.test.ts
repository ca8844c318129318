// The lab's attack tooling, WITHOUT any balancer: the flood host and its route back, the spoofed-flood
// generator (packets, checksums, counts, rates, refusals), the paced probes, and the backend rogue.
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { startSmallServer } from '../lab/benchTools';
import { startCapture } from '../lab/capture';
import { FloodOptionsError, buildFloodGenerator, floodArguments, runFlood, startFlood, type FloodOptions } from '../lab/flood';
import { cidrInside, ipInside, parseCidr } from '../lab/ipv4Cidr';
import {
  BACKEND_ROGUE_IP,
  FLOOD_HOST_IP,
  GATEWAY_BACKEND_IP,
  GATEWAY_FLOOD_IP,
  LAB_RANGE,
  SPOOF_RANGE,
  realIp,
} from '../lab/labAddresses';
import { IP_BIN } from '../lab/netns';
import { linkCountersDelta, parseSnmp, readLinkCounters, readSnmpCounters } from '../lab/netCounters';
import { runPacedProbes } from '../lab/pacedProbes';
import { labNamespacePattern } from '../lab/staleLabs';
import { createLab, LabError, type Lab } from '../lab/topology';
import { runUdpClient, startUdpEcho } from '../lab/udpEcho';
import { sleep, waitUntil } from '../lab/wait';

const PREFIX = 'fa';

function namespacesNow(): string[] {
  return execFileSync(IP_BIN, ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

const GOOD: FloodOptions = { kind: 'syn', target: { ip: '198.18.0.100', port: 81 }, rate: 1000, count: 10, seconds: 1 };

// ---------------------------------------------------------------------------------------------
// Refusals, before anything is sent.

test('CIDR arithmetic: inside the lab range or not, host bits, bad text', (t) => {
  const lab = parseCidr(LAB_RANGE);
  t.true(cidrInside(parseCidr(SPOOF_RANGE), lab));
  t.true(cidrInside(parseCidr('198.18.0.0/15'), lab));
  t.true(cidrInside(parseCidr('198.19.255.255/32'), lab));
  t.false(cidrInside(parseCidr('198.16.0.0/13'), lab), 'a larger block around the lab range');
  t.false(cidrInside(parseCidr('198.20.0.0/16'), lab));
  t.false(cidrInside(parseCidr('0.0.0.0/0'), lab));
  t.true(ipInside('198.19.0.1', lab));
  t.false(ipInside('198.17.255.255', lab));
  t.throws(() => parseCidr('198.19.0.1/16'), { message: /host bits/ });
  t.throws(() => parseCidr('198.19.0.0/33'), { message: /prefix length/ });
  t.throws(() => parseCidr('198.19.0.0'), { message: /not a CIDR/ });
});

test('flood options outside the lab range or without bounds are refused', (t) => {
  t.deepEqual(floodArguments(GOOD), [
    '--proto', 'tcp', '--target', '198.18.0.100:81', '--sources', SPOOF_RANGE, '--rate', '1000', '--count', '10', '--seconds', '1',
  ]);
  const bad: Array<[Partial<FloodOptions> & Record<string, unknown>, RegExp]> = [
    [{ sources: '10.0.0.0/8' }, /sources must lie inside the lab range/],
    [{ sources: '198.16.0.0/13' }, /sources must lie inside the lab range/],
    [{ sources: '198.19.0.1/16' }, /host bits/],
    [{ sources: 'everywhere' }, /not a CIDR/],
    [{ target: { ip: '8.8.8.8', port: 53 } }, /target must be an address inside the lab range/],
    [{ target: { ip: '198.18.0.100', port: 0 } }, /target port/],
    [{ count: 0 }, /count must be an integer in 1\.\.100000000/],
    [{ count: 1e9 }, /count must be/],
    [{ count: undefined }, /count and seconds are both required/],
    [{ seconds: undefined }, /count and seconds are both required/],
    [{ seconds: 601 }, /seconds must be a number in 0\.001\.\.600/],
    [{ seconds: Infinity }, /seconds must be/],
    [{ rate: 0 }, /rate must be/],
    [{ rate: 2.5 }, /rate must be/],
    [{ payloadBytes: 10 }, /payloadBytes is for UDP/],
    [{ kind: 'udp', payloadBytes: 1473 }, /payloadBytes must be an integer in 0\.\.1472/],
  ];
  for (const [change, message] of bad) {
    t.throws(() => floodArguments({ ...GOOD, ...change } as FloodOptions), { instanceOf: FloodOptionsError, message }, JSON.stringify(change));
  }
});

test('the generator itself refuses bad CIDRs and unbounded floods (exit 2)', async (t) => {
  const binary = await buildFloodGenerator();
  const base = ['--proto', 'udp', '--target', '198.18.0.100:53', '--rate', '1000'];
  const cases: Array<[string[], RegExp]> = [
    [[...base, '--sources', '10.0.0.0/8', '--count', '5', '--seconds', '1'], /--sources must lie inside the lab range/],
    [[...base, '--sources', '198.16.0.0/13', '--count', '5', '--seconds', '1'], /--sources must lie inside the lab range/],
    [[...base, '--sources', '198.19.0.1/16', '--count', '5', '--seconds', '1'], /host bits/],
    [['--proto', 'tcp', '--target', '10.1.1.1:80', '--rate', '10', '--sources', SPOOF_RANGE, '--count', '5', '--seconds', '1'], /--target must be inside/],
    [[...base, '--sources', SPOOF_RANGE, '--seconds', '1'], /--count is required/],
    [[...base, '--sources', SPOOF_RANGE, '--count', '5'], /--seconds is required/],
    [[...base, '--sources', SPOOF_RANGE, '--count', '5', '--seconds', '601'], /--seconds must be a number in 0\.001\.\.600/],
    [[...base, '--sources', SPOOF_RANGE, '--count', '100000001', '--seconds', '1'], /--count must be an integer/],
    [[...base, '--sources', SPOOF_RANGE, '--count', '5', '--seconds', '1', '--frobnicate', '1'], /unknown option --frobnicate/],
  ];
  for (const [args, message] of cases) {
    const r = spawnSync(binary, args, { encoding: 'utf8', timeout: 10_000 });
    t.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message, args.join(' '));
    t.regex(r.stderr, /usage:|must be/);
    t.is(r.stdout, '', 'nothing was started');
  }
});

test('a flood needs a flood host (or an explicit namespace)', async (t) => {
  const labWithout = { floodHost: null } as unknown as Lab;
  await t.throwsAsync(startFlood(labWithout, GOOD), { instanceOf: FloodOptionsError, message: /no flood host/ });
});

test('createLab checks the attack-host options; stale-lab cleanup knows their namespaces', async (t) => {
  const id = randomBytes(2).toString('hex');
  await t.throwsAsync(createLab({ reals: 1, offloads: true, prefix: PREFIX, id, floodHost: 'yes' as unknown as boolean }), {
    instanceOf: LabError,
    message: /floodHost must be true or false/,
  });
  await t.throwsAsync(createLab({ reals: 1, offloads: true, prefix: PREFIX, id, backendRogue: 1 as unknown as boolean }), {
    instanceOf: LabError,
    message: /backendRogue must be true or false/,
  });
  t.deepEqual(namespacesNow().filter((n) => n.startsWith(`${PREFIX}${id}-`)), []);
  const re = labNamespacePattern(PREFIX);
  for (const role of ['c', 'gw', 'sw', 'r1', 'f', 'x', 'rt', 'lr', 'g1', 'g3']) t.true(re.test(`${PREFIX}1a2b-${role}`), role);
  t.false(re.test(`${PREFIX}1a2b-y`));
});

test('/proc/net/snmp parsing', (t) => {
  const m = parseSnmp('Ip: Forwarding InReceives\nIp: 2 17\nTcp: RtoAlgorithm OutRsts\nTcp: 1 3\n');
  t.is(m.get('Ip.InReceives'), 17);
  t.is(m.get('Tcp.OutRsts'), 3);
});

test('pacedProbes exits 2 with a message on bad arguments', (t) => {
  const script = join(__dirname, '..', 'lab', 'pacedProbes.js');
  const cases: Array<[string[], RegExp]> = [
    [['--rate', '20', '--duration-ms', '100'], /--tcp is required/],
    [['--tcp', '198.18.0.100:81', '--duration-ms', '100'], /--rate is required/],
    [['--tcp', '198.18.0.100:81', '--rate', '201', '--duration-ms', '100'], /--rate must be in 1\.\.200/],
    [['--tcp', '198.18.0.100', '--rate', '5', '--duration-ms', '100'], /--tcp must be IPv4:port/],
  ];
  for (const [args, message] of cases) {
    const r = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 10_000 });
    t.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message);
  }
});

// ---------------------------------------------------------------------------------------------
// The lab with its attack hosts, end to end.

async function counter(lab: Lab, ns: string, name: string): Promise<number> {
  const v = (await readSnmpCounters(lab, ns)).get(name);
  if (v === undefined) throw new Error(`no ${name} in /proc/net/snmp of ${ns}`);
  return v;
}

test.serial('flood host and rogue: routed back, spoofed SYN and UDP floods with correct packets, counts, rates, no backscatter, clean destroy', async (t) => {
  const lab = await createLab({ reals: 3, offloads: false, prefix: PREFIX, floodHost: true, backendRogue: true });
  t.teardown(() => lab.destroy());
  const flood = lab.floodHost;
  const rogue = lab.backendRogue;
  if (flood === null || rogue === null) throw new Error('the lab has no flood host or no rogue');

  // Topology.
  t.deepEqual(
    [...lab.namespaces].sort(),
    ['c', 'gw', 'sw', 'r1', 'r2', 'r3', 'f', 'x'].map((r) => `${lab.id}-${r}`).sort(),
  );
  t.is(flood.ns, `${lab.id}-f`);
  t.is(flood.ip, FLOOD_HOST_IP);
  t.is(flood.gatewayIp, GATEWAY_FLOOD_IP);
  t.is(flood.spoofRange, SPOOF_RANGE);
  t.is(rogue.ns, `${lab.id}-x`);
  t.is(rogue.ip, BACKEND_ROGUE_IP);
  t.true(lab.switch.ports.includes('p-x'));
  const gwRoutes = (await lab.exec(lab.gateway.ns, 'ip', ['-4', 'route', 'show'])).stdout;
  t.regex(gwRoutes, /^198\.19\.0\.0\/16 via 198\.18\.2\.2 dev eth2/m, gwRoutes);
  t.regex((await lab.exec(lab.gateway.ns, 'ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth2'])).stdout, /198\.18\.2\.1\/24/);
  t.regex((await lab.exec(flood.ns, 'ip', ['-4', 'route', 'show'])).stdout, /^default via 198\.18\.2\.1 dev eth0/m);
  t.regex((await lab.exec(rogue.ns, 'ip', ['-4', 'route', 'show'])).stdout, new RegExp(`^default via ${GATEWAY_BACKEND_IP.replace(/\./g, '\\.')} dev eth0`, 'm'));
  t.is((await lab.exec(flood.ns, 'sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim(), '0', 'the flood host does not forward');
  for (const [ns, ifname] of [[lab.gateway.ns, 'eth2'], [flood.ns, 'eth0'], [lab.switch.ns, 'p-x'], [rogue.ns, 'eth0']] as const) {
    t.regex((await lab.exec(ns, 'ethtool', ['-k', ifname])).stdout, /tcp-segmentation-offload: off/, `offloads off on ${ns}:${ifname}`);
  }

  // A spoofed SYN flood to a plain listener on r1, through the gateway's plain forwarding: every SYN
  // arrives with good checksums, and the SYN-ACKs to the spoofed sources come back to the flood host.
  await startSmallServer(lab, 1, 8081);
  const synCount = 1500;
  const synCapture = await startCapture(lab, lab.reals[0]!.ns, { filter: 'tcp dst port 8081 and tcp[tcpflags] & tcp-syn != 0', maxPackets: synCount, seconds: 30 });
  const floodIf0 = await readLinkCounters(lab, flood.ns, 'eth0');
  const gwIf0 = await readLinkCounters(lab, lab.gateway.ns, 'eth2');
  const snmp0 = await readSnmpCounters(lab, flood.ns);
  const syn = await runFlood(lab, { kind: 'syn', target: { ip: realIp(1), port: 8081 }, rate: 2000, count: synCount, seconds: 10 });
  t.like(syn, { proto: 'tcp', target: `${realIp(1)}:8081`, sources: SPOOF_RANGE, requestedRate: 2000, count: synCount, sent: synCount, failed: 0, stoppedBy: 'count' });
  t.deepEqual(syn.errors, {});
  const synPackets = await synCapture.finished(15_000);
  t.is(synPackets.length, synCount, 'every SYN reached the real');
  const spoof = parseCidr(SPOOF_RANGE);
  t.deepEqual(synPackets.filter((p) => !ipInside(p.src, spoof)).map((p) => p.src), [], 'every source is in the spoof range');
  t.deepEqual(synPackets.filter((p) => p.ipChecksum !== 'ok' || p.l4Checksum !== 'full').length, 0, 'IP and TCP checksums are complete and right');
  t.true(synPackets.every((p) => p.tcpFlags?.join() === 'SYN' && p.dst === realIp(1) && p.payloadLength === 0));
  t.true(new Set(synPackets.map((p) => p.src)).size > synCount * 0.95, 'random sources');
  t.true(new Set(synPackets.map((p) => p.sport)).size > synCount * 0.95, 'random source ports');
  t.true(synPackets.every((p) => p.sport >= 1024));
  // SYN-ACKs (and their retransmissions) come back to the flood host.
  const back = await waitUntil(
    'the SYN-ACKs to come back to the flood host',
    async () => {
      const d = linkCountersDelta(floodIf0, await readLinkCounters(lab, flood.ns, 'eth0'));
      return d.rxPackets >= synCount ? d : undefined;
    },
    10_000,
    100,
  );
  t.log(`SYN flood: ${synCount} sent, ${back.rxPackets} frames back to the flood host`);
  // No backscatter: the flood host sent the flood (and an ARP or two), no RST, no ICMP.
  const snmp1 = await readSnmpCounters(lab, flood.ns);
  t.is((snmp1.get('Tcp.OutRsts') ?? NaN) - (snmp0.get('Tcp.OutRsts') ?? NaN), 0, 'no RST from the flood host');
  t.is((snmp1.get('Icmp.OutMsgs') ?? NaN) - (snmp0.get('Icmp.OutMsgs') ?? NaN), 0, 'no ICMP from the flood host');
  t.true((snmp1.get('Ip.InAddrErrors') ?? 0) - (snmp0.get('Ip.InAddrErrors') ?? 0) >= synCount, 'the replies were dropped as not its own');
  const gwIn = linkCountersDelta(gwIf0, await readLinkCounters(lab, lab.gateway.ns, 'eth2'));
  t.true(back.txPackets >= synCount && back.txPackets <= synCount + 5, `flood host sent ${back.txPackets}`);
  t.true(gwIn.rxPackets <= back.txPackets + 5, `the gateway received ${gwIn.rxPackets} from the flood host: the flood, nothing more`);

  // A spoofed UDP flood to r2's echo server: payload size as asked, checksums right, every datagram
  // echoed to its spoofed source and the echoes dropped by the flood host.
  const echo = await startUdpEcho(lab, 2, 5353);
  const udpCount = 800;
  const udpCapture = await startCapture(lab, lab.reals[1]!.ns, { filter: 'udp dst port 5353', maxPackets: udpCount, seconds: 30 });
  const icmp0 = await counter(lab, flood.ns, 'Icmp.OutMsgs');
  // 500/s: a Node echo server stalled by a busy machine must not overflow its socket buffer.
  const udp = await runFlood(lab, { kind: 'udp', target: { ip: realIp(2), port: 5353 }, rate: 500, count: udpCount, seconds: 10, payloadBytes: 100 });
  t.like(udp, { proto: 'udp', sent: udpCount, failed: 0, stoppedBy: 'count' });
  const udpPackets = await udpCapture.finished(15_000);
  t.is(udpPackets.length, udpCount);
  t.true(udpPackets.every((p) => p.payloadLength === 100 && p.ipChecksum === 'ok' && p.l4Checksum === 'full' && ipInside(p.src, spoof)));
  await waitUntil('every datagram to be echoed', () => echo.echoes().length >= udpCount, 30_000, 100);
  t.true(echo.echoes().every((e) => ipInside(e.peer, spoof)));
  await sleep(300);
  t.is(await counter(lab, flood.ns, 'Icmp.OutMsgs'), icmp0, 'no port unreachable for the echoes');

  // Counts and rates: a throttled flood ends by count at the asked rate, a short one by seconds, and
  // it keeps its rate steady (interface counters sampled every 250 ms); unthrottled it is fast.
  const cheap = { ip: GATEWAY_FLOOD_IP, port: 9 }; // the gateway's closed UDP port: no real server busy
  const byCount = await runFlood(lab, { kind: 'udp', target: cheap, rate: 20_000, count: 40_000, seconds: 10 });
  t.like(byCount, { sent: 40_000, failed: 0, stoppedBy: 'count' });
  t.true(Math.abs(byCount.seconds - 2) < 0.1, `40 000 at 20 000/s took ${byCount.seconds} s`);
  const bySeconds = await runFlood(lab, { kind: 'syn', target: cheap, rate: 10_000, count: 1_000_000, seconds: 1 });
  t.is(bySeconds.stoppedBy, 'seconds');
  t.true(Math.abs(bySeconds.sent - 10_000) <= 200, `1 s at 10 000/s sent ${bySeconds.sent}`);

  const steadyRate = 25_000;
  // The flood host's own tx counter every 250 ms, read by one shell inside its namespace with its own
  // timestamps: spawning a reader per sample would add the machine's spawn latency to the windows.
  const sampler = lab.exec(flood.ns, 'sh', ['-c',
    'for i in $(seq 1 40); do echo "$(date +%s%N) $(cat /sys/class/net/eth0/statistics/tx_packets)"; sleep 0.25; done']);
  await sleep(300);
  const running = await startFlood(lab, { kind: 'udp', target: cheap, rate: steadyRate, count: 100_000, seconds: 6 });
  const steady = await running.done;
  t.like(steady, { sent: 100_000, stoppedBy: 'count' });
  const samples = (await sampler).stdout.trim().split('\n').map((line) => line.split(' ').map(Number) as [number, number]);
  const windows = samples.slice(1).map(([at, tx], i) => ((tx - samples[i]![1]) * 1e9) / (at - samples[i]![0]));
  // The windows while the flood ran, without its first and last (partly outside it).
  const active = windows.map((w, i) => ({ w, i })).filter(({ w }) => w > 1000);
  const inner = active.slice(1, -1).map(({ w }) => w);
  t.log(`25 k/s in 250 ms windows: ${active.map(({ w }) => Math.round(w)).join(' ')}`);
  t.true(inner.length >= 8, `${inner.length} windows`);
  t.true(inner.every((w) => Math.abs(w - steadyRate) < steadyRate * 0.25), `every window within 25 % of ${steadyRate}/s`);

  const fast = await runFlood(lab, { kind: 'syn', target: cheap, rate: 'max', count: 2_000_000, seconds: 2 });
  t.log(`unthrottled: ${fast.rate} packets/s (${fast.sent} in ${fast.seconds} s)`);
  t.is(fast.requestedRate, null);
  t.true(fast.rate >= 150_000, `unthrottled rate ${fast.rate}/s (over 400 k/s on an idle 2-CPU machine; the bar allows for a parallel test)`);

  // The paced probes count what fails: a closed port refuses every connection.
  const refused = await runPacedProbes(lab, { tcp: { ip: realIp(3), port: 9 }, rate: 20, durationMs: 500, timeoutMs: 500 });
  t.like(refused.tcp, { attempted: 10, succeeded: 0, errors: { ECONNREFUSED: 10 } });

  // The rogue host on the backend LAN reaches the reals (TCP and UDP).
  const fromRogue = await runPacedProbes(lab, { tcp: { ip: realIp(1), port: 8081 }, udp: { ip: realIp(2), port: 5353 }, rate: 20, durationMs: 500, ns: rogue.ns });
  t.like(fromRogue.tcp, { attempted: 10, succeeded: 10 });
  t.like(fromRogue.udp, { attempted: 10, succeeded: 10 });
  const rogueUdp = await runUdpClient(lab, { host: realIp(2), port: 5353, count: 3, ns: rogue.ns });
  t.is(rogueUdp.received, 3);
  t.true(echo.echoes().some((e) => e.peer === BACKEND_ROGUE_IP), 'the real saw the rogue\'s own address');

  // Destroy removes the extra namespaces too.
  await lab.destroy();
  t.deepEqual(namespacesNow().filter((n) => n.startsWith(`${lab.id}-`)), []);
});

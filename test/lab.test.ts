// The network-namespace lab itself: topology, traffic tools and capture checksums, WITHOUT any
// balancer (client -> real through the gateway's kernel forwarding), with offloads on and off.
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { blobSha256 } from '../lab/blobContent';
import { startBlobServer } from '../lab/blobServer';
import { startCapture } from '../lab/capture';
import { fold, ipv4HeaderChecksumOk, pseudoHeaderSeed, sumWords } from '../lab/checksum';
import { blobUrl, runDownload } from '../lab/download';
import { CLIENT_IP, VIP, VIP2, realIp } from '../lab/labAddresses';
import { IP_BIN } from '../lab/netns';
import { computeL4Checksum, decodeFrame } from '../lab/packetDecode';
import { createLab, LabError } from '../lab/topology';
import { runUdpClient, startUdpEcho } from '../lab/udpEcho';

const PREFIX = 'lt';
const MiB = 1024 * 1024;
const TOOLS = join(__dirname, '..', 'lab');

function namespacesNow(): string[] {
  return execFileSync(IP_BIN, ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

// ---------------------------------------------------------------------------------------------
// Checksum code and frame decoding, on known vectors and crafted frames.

test('ones complement sum matches RFC 1071 and a known IPv4 header', (t) => {
  // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (folded).
  t.is(fold(sumWords(Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0, 8)), 0xddf2);
  // Odd length: the last byte is padded with zero.
  t.is(fold(sumWords(Uint8Array.from([0x12, 0x34, 0x56]), 0, 3)), 0x1234 + 0x5600);
  const hdr = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
  t.false(ipv4HeaderChecksumOk(hdr, 0, 20));
  hdr.writeUInt16BE(0xb861, 10); // the well-known checksum of this header
  t.true(ipv4HeaderChecksumOk(hdr, 0, 20));
});

/** Ethernet + IPv4 + TCP/UDP frame with correct IP checksum and the given L4 checksum mode. */
function craftFrame(proto: 6 | 17, payloadLen: number, mode: 'full' | 'seed' | 'bad' | 'zero'): Buffer {
  const l4HeaderLen = proto === 6 ? 20 : 8;
  const l4Len = l4HeaderLen + payloadLen;
  const frame = Buffer.alloc(14 + 20 + l4Len);
  frame.writeUInt16BE(0x0800, 12);
  const ip = 14;
  frame[ip] = 0x45;
  frame.writeUInt16BE(20 + l4Len, ip + 2);
  frame.writeUInt16BE(0x1234, ip + 4);
  frame[ip + 8] = 64;
  frame[ip + 9] = proto;
  Buffer.from([198, 18, 0, 2]).copy(frame, ip + 12);
  Buffer.from([198, 18, 1, 11]).copy(frame, ip + 16);
  const l4 = ip + 20;
  frame.writeUInt16BE(40001, l4);
  frame.writeUInt16BE(8080, l4 + 2);
  if (proto === 6) {
    frame.writeUInt32BE(0xdeadbeef, l4 + 4);
    frame[l4 + 12] = 5 << 4;
    frame[l4 + 13] = 0x18; // PSH ACK
  } else {
    frame.writeUInt16BE(l4Len, l4 + 4);
  }
  for (let i = 0; i < payloadLen; i++) frame[l4 + l4HeaderLen + i] = (i * 7 + 3) & 0xff;
  frame.writeUInt16BE(0xffff - fold(sumWords(frame, ip, ip + 20)), ip + 10);
  const fieldOffset = proto === 6 ? 16 : 6;
  const full = computeL4Checksum(frame, ip, l4, proto, l4Len, fieldOffset);
  const seed = pseudoHeaderSeed(frame, ip + 12, ip + 16, proto, l4Len);
  const value = mode === 'full' ? full : mode === 'seed' ? seed : mode === 'zero' ? 0 : full ^ 0x0101;
  frame.writeUInt16BE(value, l4 + fieldOffset);
  return frame;
}

test('decodeFrame classifies full, seed, zero, bad and truncated L4 checksums', (t) => {
  for (const proto of [6, 17] as const) {
    for (const payload of [0, 1, 100, 1401]) {
      const label = `${proto === 6 ? 'tcp' : 'udp'} payload ${payload}`;
      const full = craftFrame(proto, payload, 'full');
      const p = decodeFrame(full, full.length);
      t.truthy(p, label);
      t.is(p?.ipChecksum, 'ok', label);
      t.is(p?.l4Checksum, 'full', label);
      t.is(p?.src, '198.18.0.2');
      t.is(p?.dst, '198.18.1.11');
      t.is(p?.sport, 40001);
      t.is(p?.dport, 8080);
      t.is(p?.payloadLength, payload, label);
      t.is(decodeFrame(craftFrame(proto, payload, 'seed'), full.length)?.l4Checksum, 'seed', label);
      t.is(decodeFrame(craftFrame(proto, payload, 'bad'), full.length)?.l4Checksum, 'bad', label);
      if (proto === 17) t.is(decodeFrame(craftFrame(proto, payload, 'zero'), full.length)?.l4Checksum, 'zero', label);
      if (payload > 10) {
        // Snaplen cut the segment: a full checksum cannot be verified, a seed still can.
        t.is(decodeFrame(full, full.length - 5)?.l4Checksum, 'truncated', label);
        t.is(decodeFrame(craftFrame(proto, payload, 'seed'), full.length - 5)?.l4Checksum, 'seed', label);
      }
    }
  }
  const tcp = decodeFrame(craftFrame(6, 10, 'full'), 14 + 20 + 30);
  t.deepEqual(tcp?.tcpFlags, ['PSH', 'ACK']);
  t.is(tcp?.tcpSeq, 0xdeadbeef);
  const badIp = craftFrame(6, 10, 'full');
  badIp[14 + 8] = 63; // TTL changed without fixing the header checksum
  t.is(decodeFrame(badIp, badIp.length)?.ipChecksum, 'bad');
  t.is(decodeFrame(Buffer.alloc(60), 60), null, 'non-IPv4 frames are skipped');
});

test('traffic tools exit 2 with a message on bad arguments', (t) => {
  const cases: Array<[string, string[], RegExp]> = [
    ['download.js', ['--url', 'http://198.18.0.100:8080/', '--conns', '0'], /--conns must be in 1\.\.1024/],
    ['download.js', ['--url', 'not a url'], /--url/],
    ['download.js', ['--url', 'http://198.18.0.100/', '--count', '10', '--local-port-base', '65530'], /runs past port 65535/],
    ['blobServer.js', ['--port', '70000'], /--port must be in 1\.\.65535/],
    ['udpEcho.js', ['--mode', 'sideways'], /--mode must be/],
    ['udpEcho.js', ['--mode', 'client', '--target', '198.18.0.100'], /--target must be IPv4:port/],
    ['capture.js', ['--seconds', '5'], /--if is required/],
    ['capture.js', ['--if', 'eth0', '--frobnicate', '1'], /unknown option --frobnicate/],
  ];
  for (const [tool, args, message] of cases) {
    const r = spawnSync(process.execPath, [join(TOOLS, tool), ...args], { encoding: 'utf8', timeout: 10_000 });
    t.is(r.status, 2, `${tool} ${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message, `${tool} ${args.join(' ')}`);
    t.regex(r.stderr, /usage:/);
  }
});

// ---------------------------------------------------------------------------------------------
// The lab, end to end.

test('createLab rejects bad options before creating anything', async (t) => {
  const id = randomBytes(2).toString('hex');
  await t.throwsAsync(createLab({ reals: 0, offloads: true, prefix: PREFIX, id }), { instanceOf: LabError, message: /reals must be an integer in 1\.\.8/ });
  await t.throwsAsync(createLab({ reals: 9, offloads: true, prefix: PREFIX, id }), { instanceOf: LabError, message: /reals must be/ });
  await t.throwsAsync(createLab({ reals: 1, offloads: true, prefix: 'Bad-Prefix' }), { instanceOf: LabError, message: /lab prefix must be/ });
  await t.throwsAsync(createLab({ reals: 1, offloads: true, prefix: PREFIX, id: 'xyz' }), { instanceOf: LabError, message: /4 lower-case hex/ });
  await t.throwsAsync(createLab({ reals: 1, offloads: true, prefix: PREFIX, id, balancerArm: true }), { instanceOf: LabError, message: /set directRouting too/ });
  t.deepEqual(
    namespacesNow().filter((n) => n.startsWith(`${PREFIX}${id}-`)),
    [],
  );
});

test.serial('a creation failure half way removes everything the lab made', async (t) => {
  const id = randomBytes(2).toString('hex');
  const stray = `${PREFIX}${id}-r2`;
  execFileSync(IP_BIN, ['netns', 'add', stray]);
  t.teardown(() => {
    spawnSync(IP_BIN, ['netns', 'del', stray]);
  });
  // c, gw, sw and r1 get created, then r2 collides with the stray namespace.
  const err = await t.throwsAsync(createLab({ reals: 3, offloads: false, prefix: PREFIX, id }), { instanceOf: LabError });
  t.regex(err?.message ?? '', /already exists/);
  const left = namespacesNow().filter((n) => n.startsWith(`${PREFIX}${id}-`));
  t.deepEqual(left, [stray], 'only the namespace the lab did not make is left');
});

for (const offloads of [true, false]) {
  test.serial(`lab with offloads ${offloads ? 'on' : 'off'}: direct download, capture checksums, UDP echo, clean destroy`, async (t) => {
    const lab = await createLab({ reals: 3, offloads, prefix: PREFIX });
    t.teardown(() => lab.destroy());

    // Topology.
    t.regex(lab.id, /^lt[0-9a-f]{4}$/);
    t.deepEqual(
      [...lab.namespaces].sort(),
      ['c', 'gw', 'sw', 'r1', 'r2', 'r3'].map((r) => `${lab.id}-${r}`).sort(),
    );
    const present = namespacesNow();
    for (const ns of lab.namespaces) t.true(present.includes(ns), `${ns} exists`);
    t.is(lab.client.ip, CLIENT_IP);
    t.deepEqual(
      lab.reals.map((r) => r.ip),
      [realIp(1), realIp(2), realIp(3)],
    );
    t.is(lab.vip, VIP);
    t.is(lab.vip2, VIP2);
    for (const host of [lab.client, ...lab.reals]) t.regex(host.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    for (const ns of lab.namespaces) {
      const addrs = (await lab.exec(ns, 'ip', ['-4', '-o', 'addr'])).stdout;
      t.false(addrs.includes(VIP) || addrs.includes(VIP2), `no VIP configured in ${ns}`);
      t.is((await lab.exec(ns, 'sysctl', ['-n', 'net.ipv6.conf.all.disable_ipv6'])).stdout.trim(), '1', `IPv6 off in ${ns}`);
    }
    t.is((await lab.exec(lab.gateway.ns, 'sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim(), '1');
    const features = (await lab.exec(lab.switch.ns, 'ethtool', ['-k', 'p-r1'])).stdout;
    t.regex(features, new RegExp(`tcp-segmentation-offload: ${offloads ? 'on' : 'off'}`));
    t.throws(() => lab.spawn('not-a-lab-namespace', 'true', []), { instanceOf: LabError });

    // Blob servers on every real; a 64 MiB download straight from r1 through kernel forwarding.
    const servers = await Promise.all([1, 2, 3].map((i) => startBlobServer(lab, i)));
    const bytes = 64 * MiB;
    const seed = `lab-test-${lab.id}`;
    const big = await runDownload(lab, { url: blobUrl(realIp(1), 8080, bytes, seed), localPortBase: 41000, timeoutMs: 90_000 });
    t.is(big.failed, 0, JSON.stringify(big.results));
    const r = big.results[0];
    t.is(r?.status, 200);
    t.is(r?.bytes, bytes);
    t.is(r?.real, realIp(1));
    t.is(r?.localPort, 41000);
    const served = await servers[0]!.waitForServed(1, 10_000);
    t.is(r?.sha256, served[0]?.sha256, 'client body hash equals the hash the server logged');
    t.is(served[0]?.peer, CLIENT_IP, 'no NAT in between: the real sees the client address');
    t.is(served[0]?.peerPort, 41000);
    t.is(r?.sha256, blobSha256(seed, bytes), 'and both equal the independently computed content hash');
    t.is(servers[1]!.served().length, 0, 'other reals served nothing');

    // Capture on the client during a small download: every frame carries a complete or seed checksum.
    const cap = await startCapture(lab, lab.client.ns, { filter: `tcp port 8080`, maxPackets: 50_000 });
    const small = await runDownload(lab, { url: blobUrl(realIp(2), 8080, 2 * MiB, 'small'), localPortBase: 41100, timeoutMs: 30_000 });
    t.is(small.failed, 0, JSON.stringify(small.results));
    const packets = await cap.stop();
    t.true(packets.length >= 10, `captured ${packets.length} packets`);
    const toReal = packets.filter((p) => p.src === CLIENT_IP && p.dst === realIp(2) && p.sport === 41100 && p.dport === 8080);
    const fromReal = packets.filter((p) => p.src === realIp(2) && p.dst === CLIENT_IP && p.sport === 8080 && p.dport === 41100);
    t.true(toReal.length > 0 && fromReal.length > 0, 'both directions captured');
    t.is(toReal.length + fromReal.length, packets.length, 'nothing but the download was captured');
    t.true(toReal.some((p) => p.tcpFlags?.includes('SYN')), 'the handshake was captured (capture was ready in time)');
    const wrong = packets.filter((p) => p.ipChecksum !== 'ok' || (p.l4Checksum !== 'full' && p.l4Checksum !== 'seed'));
    t.deepEqual(wrong, [], 'every packet has a good IP checksum and a full or seed TCP checksum');
    t.is(
      fromReal.reduce((s, p) => s + (p.payloadLength ?? 0), 0) >= 2 * MiB,
      true,
      'the captured server payload covers the body',
    );
    const largest = Math.max(...packets.map((p) => p.length));
    if (offloads) t.true(largest > 1500, `GSO frames (> MTU) seen with offloads on, largest ${largest}`);
    else t.true(largest <= 1500, `only MTU-sized frames with offloads off, largest ${largest}`);

    // UDP echo round trip straight to r3, from two client sockets.
    const echo = await startUdpEcho(lab, 3, 5353);
    const udp = await runUdpClient(lab, { host: realIp(3), port: 5353, count: 6, sockets: 2, localPortBase: 41200, timeoutMs: 2000 });
    t.deepEqual(udp.lost, []);
    t.is(udp.received, 6);
    for (const reply of udp.replies) {
      t.is(reply.real, realIp(3));
      t.is(reply.from, `${realIp(3)}:5353`);
      t.is(reply.localPort, 41200 + reply.socket);
    }
    t.deepEqual(
      echo.echoes().map((e) => `${e.peer}:${e.peerPort}`),
      [0, 1, 2, 3, 4, 5].map((i) => `${CLIENT_IP}:${41200 + (i % 2)}`),
    );

    // Destroy: tracked processes die, namespaces go, a second destroy is harmless.
    const sleeper = lab.spawn(lab.gateway.ns, 'sleep', ['300']);
    await lab.destroy();
    t.true(sleeper.exitCode !== null || sleeper.signalCode !== null, 'tracked process was killed');
    for (const s of servers) t.false(s.tool.running, `${s.real.ip} server stopped`);
    t.deepEqual(
      namespacesNow().filter((n) => n.startsWith(`${lab.id}-`)),
      [],
      'no namespace of the lab is left',
    );
    await t.notThrowsAsync(lab.destroy());
    t.true(lab.destroyed);
    await t.throwsAsync(lab.exec(lab.client.ns, 'true', []), { instanceOf: LabError });
  });
}

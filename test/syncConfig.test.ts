// Config sync (src/config.ts) and its key file (src/sync/syncKey.ts): validated at the edge, with
// messages that say what to do.
import test from "ava";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, NatlbError } from "../src/errors";
import { parseConfig } from "../src/config";
import { readSyncKey } from "../src/sync/syncKey";

const service = { vip: "198.18.0.100", port: 80, protocol: "tcp", reals: [{ ip: "198.18.1.11", port: 8080 }] };
const withSync = (sync: unknown) => parseConfig({ services: [service], sync });

test("sync: listen with or without a port, peers, refreshS defaulted", (t) => {
  const config = withSync({ listen: "198.18.1.1", peers: ["198.18.1.2:9000", "198.18.1.3"], keyFile: "/etc/natlb/sync.key" });
  t.deepEqual(config.sync, {
    listen: { ip: "198.18.1.1", port: 8848 },
    peers: [{ ip: "198.18.1.2", port: 9000 }, { ip: "198.18.1.3", port: 8848 }],
    multicast: undefined,
    keyFile: "/etc/natlb/sync.key",
    refreshS: 30,
  });
  t.is(parseConfig({ services: [service] }).sync, undefined);
  const multicast = withSync({ listen: "198.18.1.1:8848", multicast: { group: "239.18.0.1", interface: "eth1" }, keyFile: "/k", refreshS: 5 });
  t.deepEqual(multicast.sync?.multicast, { group: "239.18.0.1", interface: "eth1" });
  t.is(multicast.sync?.refreshS, 5);
});

test("sync: bad fields are refused by name", (t) => {
  const problem = (sync: unknown): string => {
    const error = t.throws(() => withSync(sync), { instanceOf: ConfigError });
    return error?.message ?? "";
  };
  t.regex(problem({ listen: "198.18.1.1", keyFile: "/k" }), /sync\.peers.*needs peers, a multicast group, or both/s);
  t.regex(problem({ listen: "198.18.1.1:70000", peers: ["198.18.1.2"], keyFile: "/k" }), /sync\.listen.*IPv4 address and UDP port/s);
  t.regex(problem({ listen: "nowhere", peers: ["198.18.1.2"], keyFile: "/k" }), /sync\.listen/);
  t.regex(problem({ listen: "198.18.1.1", peers: ["255.255.255.255"], keyFile: "/k" }), /sync\.peers\[0\].*unicast/s);
  t.regex(problem({ listen: "198.18.1.1", multicast: { group: "198.18.0.1", interface: "eth1" }, keyFile: "/k" }), /sync\.multicast\.group.*224\.0\.0\.0\/4/s);
  t.regex(problem({ listen: "198.18.1.1", peers: ["198.18.1.2"] }), /sync\.keyFile/);
  t.regex(problem({ listen: "198.18.1.1", peers: ["198.18.1.2"], keyFile: "/k", refreshS: 0 }), /sync\.refreshS/);
  t.regex(problem({ listen: "0.0.0.0", peers: ["198.18.1.2"], keyFile: "/k" }), /listens everywhere/);
  t.regex(problem({ listen: "198.18.1.1", peers: ["198.18.1.2"], keyFile: "/k", key: "inline" }), /key/);
});

test("the key file: refused when others may read it, too short or missing; read as it is otherwise", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "natlb-sync-key-"));
  try {
    const path = join(dir, "sync.key");
    await writeFile(path, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", { mode: 0o644 });
    await chmod(path, 0o644);
    const open = await t.throwsAsync(readSyncKey(path), { instanceOf: NatlbError });
    t.regex(open?.message ?? "", /readable by every user .*chmod 600/);
    await chmod(path, 0o600);
    t.is((await readSyncKey(path)).length, 65);
    await writeFile(path, "short");
    t.regex((await t.throwsAsync(readSyncKey(path)))?.message ?? "", /holds 5 bytes: a key needs 32/);
    t.regex((await t.throwsAsync(readSyncKey(join(dir, "missing"))))?.message ?? "", /ENOENT.*openssl rand/s);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// Config fields for connection limits (reals' maxConns / minConnsToResume), the fallback real and the
// hash schedulers' flags: defaults, refusals at their path saying what to fix, and the reload diff.
import test from "ava";
import { diffConfig, parseConfig } from "../src/config";
import { configRefusal } from "./support/configField";

const VIP = "198.18.0.100";
const service = (fields: Record<string, unknown>, real: Record<string, unknown> = {}) => ({
  services: [{ vip: VIP, port: 80, reals: [{ ip: "198.18.1.11", ...real }, { ip: "198.18.1.12" }], ...fields }],
});


test("left out: no limits, no flags, no fallback real", (t) => {
  const parsed = parseConfig(service({})).services[0]!;
  t.deepEqual(parsed.schedulerFlags, []);
  t.is(parsed.fallback, undefined);
  t.is(parsed.reals[0]!.maxConns, undefined);
  t.is(parsed.reals[0]!.minConnsToResume, undefined);
});

test("limits, flags and the fallback real are taken as written; the fallback's port defaults to the service's", (t) => {
  const parsed = parseConfig(service({ scheduler: "mh", schedulerFlags: ["mh-port", "mh-fallback"], fallback: { ip: "198.18.1.30" } }, { maxConns: 5, minConnsToResume: 2 }))
    .services[0]!;
  t.deepEqual(parsed.schedulerFlags, ["mh-port", "mh-fallback"]);
  t.deepEqual(parsed.fallback, { ip: "198.18.1.30", port: 80 });
  t.like(parsed.reals[0], { maxConns: 5, minConnsToResume: 2 });
  t.deepEqual(parseConfig(service({ fallback: { ip: "198.18.1.30", port: 8080 } })).services[0]!.fallback, { ip: "198.18.1.30", port: 8080 });
});

test("bad limits are refused at the real's field, saying what to fix", (t) => {
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ maxConns: 5, minConnsToResume: 6 }, "services[0].reals[0].minConnsToResume", /6 is more than maxConns 5: .* must be at most maxConns/],
    [{ minConnsToResume: 2 }, "services[0].reals[0].minConnsToResume", /needs maxConns: set maxConns too, or remove minConnsToResume/],
    [{ maxConns: 0 }, "services[0].reals[0].maxConns", /expected an integer 1\.\.4294967295, got 0/],
    [{ maxConns: 2.5 }, "services[0].reals[0].maxConns", /expected an integer/],
    [{ maxConns: "10" }, "services[0].reals[0].maxConns", /expected an integer 1\.\.4294967295, got "10"/],
  ];
  for (const [real, path, message] of cases) {
    const error = configRefusal(service({}, real));
    t.is(error.path, path, JSON.stringify(real));
    t.regex(error.message, message, JSON.stringify(real));
  }
});

test("a scheduler flag must belong to the service's scheduler", (t) => {
  const wrong = configRefusal(service({ scheduler: "sh", schedulerFlags: ["sh-port", "mh-fallback"] }));
  t.is(wrong.path, "services[0].schedulerFlags[1]");
  t.is(wrong.message, 'config: services[0].schedulerFlags[1]: "mh-fallback" is a flag of scheduler "mh", and this service\'s scheduler is "sh": set "scheduler": "mh", or remove the flag');
  t.regex(configRefusal(service({ schedulerFlags: ["sh-port"] })).message, /scheduler is "wrr"/, "the default scheduler takes no flag");
  t.regex(configRefusal(service({ scheduler: "mh", schedulerFlags: ["mh-port", "mh-port"] })).message, /lists a flag twice/);
  t.regex(configRefusal(service({ scheduler: "mh", schedulerFlags: ["mh-persistent"] })).message, /expected one of "sh-port", "sh-fallback", "mh-port", "mh-fallback", got "mh-persistent"/);
});

test("the fallback real is refused when malformed or a VIP", (t) => {
  t.is(configRefusal(service({ fallback: { ip: VIP } })).path, "services[0].fallback.ip");
  t.regex(configRefusal(service({ fallback: { ip: VIP } })).message, /is the virtual IP of services\[0\]: the fallback real needs its own address/);
  t.is(configRefusal(service({ fallback: "198.18.1.30" })).path, "services[0].fallback");
  t.is(configRefusal(service({ fallback: { ip: "198.18.1.30", weight: 2 } })).path, "services[0].fallback.weight");
  t.is(configRefusal(service({ fallback: { ip: "198.18.1.30", port: 0 } })).path, "services[0].fallback.port");
});

test("a reload diff names the flags, the fallback real and a real's changed limits", (t) => {
  const before = parseConfig(service({ scheduler: "sh" }));
  const after = parseConfig(service({ scheduler: "sh", schedulerFlags: ["sh-fallback"], fallback: { ip: "198.18.1.30" } }, { maxConns: 9 }));
  const change = diffConfig(before, after).changed[0]!;
  t.deepEqual(change.fields, ["schedulerFlags", "fallback"]);
  t.deepEqual(change.reals.updated.map((u) => [u.key, u.old.maxConns, u.next.maxConns]), [["198.18.1.11:80", undefined, 9]]);
  t.deepEqual(diffConfig(after, after).changed, []);
});

// Connection limits, the fallback real and the hash schedulers' flags in the data plane's pick
// (native/engine/service_table.h): IPVS's overload hysteresis against ip_vs_conn.c's rule written out
// here, every pick mode passing over a full real, sh/mh with -port and -fallback, and the fallback real.
import test from "ava";
import { loadNative, type NativeService, type PickOutcome } from "../src/native";
import { LEAST_CONNECTION_MODES, hashOptionsOf, schedulerFor, type SchedulerFlag, type SchedulerName } from "../src/schedulers";
import { SeededRandom } from "./support/random";

type Load = { active: number; inactive: number };
const IDLE: Load = { active: 0, inactive: 0 };
const FALLBACK = { ip: "198.18.1.30", port: 80, id: 99 };

interface Spec {
  scheduler: SchedulerName;
  reals: Array<{ weight?: number; up?: boolean; maxConns?: number; minConnsToResume?: number }>;
  flags?: SchedulerFlag[];
  fallback?: boolean;
}

/** The service the balancer would publish for `spec` (schedulers' table, limits, flags, fallback). */
function serviceOf(spec: Spec): NativeService {
  const reals = spec.reals.map((r, i) => ({ ip: `198.18.1.${11 + i}`, port: 80, weight: r.weight ?? 1, up: r.up ?? true }));
  const table = schedulerFor(spec.scheduler).build({ reals });
  return {
    vip: "198.18.0.100", port: 80, protocol: "tcp", mode: table.mode, slots: table.slots, ...(table.weights ? { weights: table.weights } : {}),
    ...(table.mode === "hash" ? hashOptionsOf(spec.flags ?? []) : {}),
    reals: spec.reals.map((r, i) => ({
      ip: reals[i]!.ip, port: 80, id: i,
      ...(r.maxConns !== undefined ? { maxConns: r.maxConns } : {}),
      ...(r.minConnsToResume !== undefined ? { minConnsToResume: r.minConnsToResume } : {}),
    })),
    ...(spec.fallback ? { fallback: FALLBACK } : {}),
  };
}

const serviceFor = (spec: Spec) => new (loadNative().ServiceForTests)(serviceOf(spec));
/** The loads as pick takes them: one per real, then the fallback's. */
const loadsOf = (spec: Spec, loads: Load[]) => (spec.fallback ? [...loads, IDLE] : loads);
const CLIENT = { ip: "198.18.0.1", port: 40000 };

/** ip_vs_conn.c: ip_vs_bind_dest raises the flag at u_threshold, ip_vs_unbind_dest lowers it below l_threshold (or 3/4 of u). */
function ipvsOverloaded(flag: boolean, conns: number, u: number, l: number): boolean {
  if (u !== 0 && conns >= u) return true;
  if (l !== 0) return conns < l ? false : flag;
  if (u !== 0) return conns * 4 < u * 3 ? false : flag;
  return false;
}

test("overload hysteresis: full at maxConns, resumes below minConnsToResume or 3/4 of maxConns", (t) => {
  // rr over two reals, the first limited: a pick that starts on it shows whether it takes the connection.
  const pickFirst = (spec: Spec) => {
    const service = serviceFor(spec);
    return (loads: number[]) => loads.map((n) => {
      const picked = service.pick([{ active: n, inactive: 0 }, IDLE], CLIENT, 0);
      service.pick([{ active: n, inactive: 0 }, IDLE], CLIENT, 0);  // the cursor back to the first real
      return picked.real === 0;
    });
  };
  const defaultResume: Spec = { scheduler: "rr", reals: [{ maxConns: 8 }, {}] };
  // 8 -> full; 7 and 6 (>= 3/4 of 8) still full; 5 resumes; 7 (not full) takes connections again.
  t.deepEqual(pickFirst(defaultResume)([3, 8, 7, 6, 5, 7, 8]), [true, false, false, false, true, true, false]);
  const explicit: Spec = { scheduler: "rr", reals: [{ maxConns: 8, minConnsToResume: 3 }, {}] };
  t.deepEqual(pickFirst(explicit)([8, 5, 3, 2, 7]), [false, false, false, true, true]);
  // Active and inactive connections both count.
  const service = serviceFor(defaultResume);
  t.is(service.pick([{ active: 5, inactive: 3 }, IDLE], CLIENT, 0).real, 1);
  t.deepEqual(service.overloaded(), [true, false]);
});

test("the overload flag follows ip_vs_conn.c's rule on 2,000 random count sequences", (t) => {
  const seeded = new SeededRandom(20261202);
  const below = (n: number) => seeded.uint32() % n;
  for (let run = 0; run < 2000; run++) {
    const u = 1 + below(20);
    const l = below(3) === 0 ? 0 : 1 + below(u);
    const spec: Spec = { scheduler: "wlc", reals: [{ maxConns: u, ...(l ? { minConnsToResume: l } : {}) }] };
    const service = serviceFor(spec);
    let flag = false;
    let conns = below(u + 2);
    for (let step = 0; step < 30; step++) {
      conns = Math.max(0, conns + below(5) - 2);
      flag = ipvsOverloaded(flag, conns, u, l);
      const picked = service.pick([{ active: conns, inactive: 0 }], CLIENT, 0);
      if (service.overloaded()[0] !== flag || (picked.outcome === "real") === flag) {
        t.fail(`u ${u} l ${l} at ${conns}: IPVS says ${flag}, natlb ${service.overloaded()[0]} (${picked.outcome})`);
        return;
      }
    }
  }
  t.pass();
});

test("rr, wrr, random and wrandom pass over a full real to the others", (t) => {
  for (const scheduler of ["rr", "wrr", "random", "wrandom"] as const) {
    const spec: Spec = { scheduler, reals: [{ maxConns: 2, weight: 5 }, { weight: 1 }, { maxConns: 4, weight: 2 }] };
    const service = serviceFor(spec);
    const loads = [{ active: 2, inactive: 0 }, { active: 50, inactive: 0 }, { active: 1, inactive: 0 }];
    const landed = [0, 0, 0];
    for (let i = 0; i < 300; i++) {
      const picked = service.pick(loads, CLIENT, i * 7919);
      t.is(picked.outcome, "real", scheduler);
      landed[picked.real]! += 1;
    }
    t.is(landed[0], 0, `${scheduler}: the full real gets nothing`);
    t.true(landed[1]! > 0 && landed[2]! > 0, `${scheduler}: ${landed.join("/")}`);
  }
});

test("the least-connection family passes over a full real, even the least loaded one", (t) => {
  for (const scheduler of LEAST_CONNECTION_MODES) {
    const spec: Spec = { scheduler, reals: [{ maxConns: 1 }, {}, {}] };
    const service = serviceFor(spec);
    // Real 0 is the least loaded by every formula, but full: real 2 is next best.
    const picked = service.pick([{ active: 0, inactive: 1 }, { active: 9, inactive: 0 }, { active: 3, inactive: 0 }], CLIENT, 0);
    t.deepEqual(picked, { outcome: "real", real: 2 }, scheduler);
    t.deepEqual(service.pick([{ active: 0, inactive: 0 }, { active: 9, inactive: 0 }, { active: 3, inactive: 0 }], CLIENT, 0).real, 0, `${scheduler} below the limit`);
  }
});

/** The real a client's connection lands on with an idle service. */
function hashedReal(spec: Spec, client: { ip: string; port: number }): number {
  return serviceFor(spec).pick(loadsOf(spec, spec.reals.map(() => IDLE)), client, 0).real;
}

test("sh-port and mh-port spread one client's ports over the reals; without them the client keeps one real", (t) => {
  for (const scheduler of ["sh", "mh"] as const) {
    const reals = [{}, {}, {}, {}];
    const ports = Array.from({ length: 200 }, (_, i) => 20000 + i * 13);
    const plain = new Set(ports.map((port) => hashedReal({ scheduler, reals }, { ip: CLIENT.ip, port })));
    t.is(plain.size, 1, `${scheduler}: one real for every port`);
    const withPort = ports.map((port) => hashedReal({ scheduler, reals, flags: [`${scheduler}-port`] }, { ip: CLIENT.ip, port }));
    for (let real = 0; real < 4; real++) {
      const share = withPort.filter((r) => r === real).length;
      t.true(share >= 25 && share <= 75, `${scheduler}-port: real ${real} got ${share} of 200`);
    }
    // The same port keeps its real.
    t.is(hashedReal({ scheduler, reals, flags: [`${scheduler}-port`] }, { ip: CLIENT.ip, port: 20000 }), withPort[0]);
  }
});

test("sh and mh: the hashed real full sends the client to the fallback real or a drop; with -fallback, on to another real", (t) => {
  for (const scheduler of ["sh", "mh"] as const) {
    const reals = [{ maxConns: 3 }, { maxConns: 3 }, { maxConns: 3 }];
    const home = hashedReal({ scheduler, reals }, CLIENT);
    const loads = reals.map((_, i) => (i === home ? { active: 3, inactive: 0 } : IDLE));
    t.deepEqual(serviceFor({ scheduler, reals }).pick(loads, CLIENT, 0), { outcome: "realsFull", real: -1 }, scheduler);
    t.deepEqual(serviceFor({ scheduler, reals, fallback: true }).pick([...loads, IDLE], CLIENT, 0), { outcome: "fallback", real: 3 }, scheduler);
    const walked = serviceFor({ scheduler, reals, flags: [`${scheduler}-fallback`] }).pick(loads, CLIENT, 0);
    t.is(walked.outcome, "real", `${scheduler}-fallback`);
    t.not(walked.real, home, `${scheduler}-fallback: another real`);
    // -fallback with every real full: the fallback real, else a drop.
    const allFull = reals.map(() => ({ active: 3, inactive: 0 }));
    const flags: SchedulerFlag[] = [`${scheduler}-fallback`];
    t.deepEqual(serviceFor({ scheduler, reals, flags }).pick(allFull, CLIENT, 0).outcome, "realsFull");
    t.deepEqual(serviceFor({ scheduler, reals, flags, fallback: true }).pick([...allFull, IDLE], CLIENT, 0), { outcome: "fallback", real: 3 });
    // Other clients of the full real spread over the rest, not all onto one.
    const movedTo = new Set<number>();
    const service = serviceFor({ scheduler, reals, flags });
    for (let i = 0; i < 2000 && movedTo.size < 2; i++) {
      const client = { ip: `198.18.${(i >> 8) & 255}.${i & 255}`, port: 1 };
      if (hashedReal({ scheduler, reals }, client) !== home) continue;
      movedTo.add(service.pick(loads, client, 0).real);
    }
    t.is(movedTo.size, 2, `${scheduler}-fallback: a full real's clients go to both other reals`);
  }
});

test("the fallback real takes new connections when every real is down, drained or full, and only then", (t) => {
  const cases: Array<{ why: string; spec: Spec; loads: Load[]; without: PickOutcome }> = [
    { why: "all down", spec: { scheduler: "wrr", reals: [{ up: false }, { up: false }] }, loads: [IDLE, IDLE], without: "noReal" },
    { why: "all drained", spec: { scheduler: "wlc", reals: [{ weight: 0 }, { weight: 0 }] }, loads: [IDLE, IDLE], without: "noReal" },
    { why: "down and full", spec: { scheduler: "rr", reals: [{ up: false }, { maxConns: 1 }] }, loads: [IDLE, { active: 0, inactive: 1 }], without: "realsFull" },
    { why: "all full (lc)", spec: { scheduler: "lc", reals: [{ maxConns: 1 }, { maxConns: 2 }] }, loads: [{ active: 1, inactive: 0 }, { active: 2, inactive: 0 }], without: "realsFull" },
    { why: "all full (random)", spec: { scheduler: "random", reals: [{ maxConns: 1 }, { maxConns: 1 }] }, loads: [{ active: 1, inactive: 0 }, { active: 1, inactive: 0 }], without: "realsFull" },
  ];
  for (const { why, spec, loads, without } of cases) {
    t.deepEqual(serviceFor(spec).pick(loads, CLIENT, 3), { outcome: without, real: -1 }, `${why}, no fallback`);
    t.deepEqual(serviceFor({ ...spec, fallback: true }).pick([...loads, IDLE], CLIENT, 3), { outcome: "fallback", real: spec.reals.length }, why);
  }
  // A real that can take it wins over the fallback real.
  const spec: Spec = { scheduler: "rr", reals: [{ maxConns: 1 }, {}], fallback: true };
  const service = serviceFor(spec);
  for (let i = 0; i < 4; i++) t.deepEqual(service.pick([{ active: 1, inactive: 0 }, IDLE, IDLE], CLIENT, 0), { outcome: "real", real: 1 });
});

test("the data plane refuses a minConnsToResume above maxConns", (t) => {
  const service = serviceOf({ scheduler: "rr", reals: [{ maxConns: 2 }] });
  service.reals[0]!.minConnsToResume = 3;
  t.throws(() => new (loadNative().ServiceForTests)(service), { message: /minConnsToResume must not exceed maxConns/ });
});

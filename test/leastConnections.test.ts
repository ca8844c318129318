// IPVS's least-connection family in the data plane (pickLeastLoaded), against the formulas of
// ip_vs_lc.c, ip_vs_wlc.c, ip_vs_sed.c and ip_vs_nq.c written out here on their own, and the tables
// the policies hand it.
import test from "ava";
import { loadNative } from "../src/native";
import { LEAST_CONNECTION_MODES, schedulerFor, type LeastConnectionMode } from "../src/schedulers";
import { SeededRandom } from "./support/random";

type Load = { active: number; inactive: number; weight: number };
const pick = (mode: LeastConnectionMode, reals: Load[]) => loadNative().packet.pickLeastLoaded(mode, reals);

/** The IPVS choice, as the kernel modules loop: the first real with weight > 0, then strictly better ones. */
function ipvsChoice(mode: LeastConnectionMode, reals: Load[]): number {
  let best = -1;
  for (const [i, r] of reals.entries()) {
    if (r.weight === 0) continue;
    if (mode === "nq" && r.active === 0) return i;
    if (best < 0) {
      best = i;
      continue;
    }
    const b = reals[best]!;
    const overhead = (x: Load) => x.active * 256 + x.inactive;
    const better =
      mode === "lc" ? overhead(r) < overhead(b)
        : mode === "wlc" ? overhead(r) * b.weight < overhead(b) * r.weight
          : (r.active + 1) * b.weight < (b.active + 1) * r.weight;
    if (better) best = i;
  }
  return best;
}

test("each mode follows its IPVS formula on hand-made cases", (t) => {
  // lc: an active connection weighs 256 inactive ones; weights do not count.
  t.is(pick("lc", [{ active: 1, inactive: 0, weight: 1 }, { active: 0, inactive: 255, weight: 1 }]), 1);
  t.is(pick("lc", [{ active: 1, inactive: 0, weight: 1 }, { active: 0, inactive: 256, weight: 100 }]), 0, "a tie goes to the earlier real");
  // wlc: per unit of weight.
  t.is(pick("wlc", [{ active: 2, inactive: 0, weight: 1 }, { active: 5, inactive: 0, weight: 3 }]), 1);
  t.is(pick("wlc", [{ active: 0, inactive: 0, weight: 0 }, { active: 9, inactive: 0, weight: 1 }]), 1, "weight 0 takes nothing");
  // sed: (active + 1) / weight, inactive ignored.
  t.is(pick("sed", [{ active: 0, inactive: 0, weight: 1 }, { active: 1, inactive: 500, weight: 3 }]), 1);
  // nq: an idle real first, even a light one; else as sed.
  t.is(pick("nq", [{ active: 1, inactive: 0, weight: 100 }, { active: 0, inactive: 9, weight: 1 }]), 1);
  t.is(pick("nq", [{ active: 1, inactive: 0, weight: 1 }, { active: 1, inactive: 0, weight: 3 }]), 1);
  for (const mode of LEAST_CONNECTION_MODES) {
    t.is(pick(mode, []), -1);
    t.is(pick(mode, [{ active: 0, inactive: 0, weight: 0 }]), -1);
  }
});

test("each mode agrees with the IPVS loop on 4,000 random cases", (t) => {
  const seeded = new SeededRandom(20261202);
  const random = () => seeded.uint32() / 2 ** 32;
  for (const mode of LEAST_CONNECTION_MODES) {
    for (let n = 0; n < 1000; n++) {
      const reals = Array.from({ length: 1 + Math.floor(random() * 8) }, () => ({
        active: Math.floor(random() * 6) * (random() < 0.2 ? 1000 : 1),
        inactive: Math.floor(random() * 600),
        weight: random() < 0.1 ? 0 : 1 + Math.floor(random() * 5) * (random() < 0.1 ? 10000 : 1),
      }));
      const expected = ipvsChoice(mode, reals);
      const got = pick(mode, reals);
      if (got !== expected) {
        t.fail(`${mode} ${JSON.stringify(reals)}: expected ${expected}, got ${got}`);
        return;
      }
    }
  }
  t.pass();
});

test("the policies list the usable reals with their weights for the data plane", (t) => {
  const reals = [
    { ip: "198.18.1.11", port: 80, weight: 3, up: true },
    { ip: "198.18.1.12", port: 80, weight: 0, up: true },
    { ip: "198.18.1.13", port: 80, weight: 2, up: false },
    { ip: "198.18.1.14", port: 80, weight: 5, up: true },
  ];
  for (const mode of LEAST_CONNECTION_MODES) {
    const table = schedulerFor(mode).build({ reals });
    t.is(table.mode, mode);
    t.deepEqual([...table.slots], [0, 3]);
    t.deepEqual([...table.weights!], [3, 5]);
  }
});

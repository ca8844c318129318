// Behind ECMP every instance must send a new flow to the same real (native/engine/service_table.cc's
// hash pick over src/schedulers/mh.ts's table): two services built apart, with the same reals in
// another order, other real ids and the same mhSeed, pick the same real for every client; another
// seed picks differently for some.
import test from "ava";
import { formatIPv4 } from "../src/addresses";
import { loadNative, type NativeService } from "../src/native";
import { hashOptionsOf, schedulerFor, type SchedulerFlag } from "../src/schedulers";
import { SeededRandom } from "./support/random";

const REALS = [11, 12, 13, 14, 15].map((n, i) => ({ ip: `198.18.1.${n}`, port: 80, weight: i === 2 ? 2 : 1, up: true }));

/** The service one instance would publish, its reals in `order`, its real ids from `idBase`. */
function instanceService(order: readonly number[], idBase: number, seed: number, flags: SchedulerFlag[] = []): NativeService {
  const reals = order.map((i) => REALS[i]!);
  const table = schedulerFor("mh").build({ reals, seed });
  return {
    vip: "198.18.0.100", port: 80, protocol: "tcp", mode: table.mode, slots: table.slots, ...hashOptionsOf(flags), midStreamPickUp: true,
    reals: reals.map((r, i) => ({ ip: r.ip, port: r.port, id: idBase + i })),
  };
}

function picksFor(service: NativeService, clients: Array<{ ip: string; port: number }>): string[] {
  const native = new (loadNative().ServiceForTests)(service);
  const loads = service.reals.map(() => ({ active: 0, inactive: 0 }));
  return clients.map((client, n) => {
    const picked = native.pick(loads, client, n);  // a random value that differs per pick: unused by "hash"
    const real = service.reals[picked.real];
    return picked.outcome === "real" && real ? `${real.ip}:${real.port}` : `none (${picked.outcome})`;
  });
}

function randomClients(count: number): Array<{ ip: string; port: number }> {
  const random = new SeededRandom(0x5eed);
  return Array.from({ length: count }, () => ({ ip: formatIPv4(random.uint32()), port: random.int(1024, 65535) }));
}

for (const flags of [[], ["mh-port"]] as SchedulerFlag[][]) {
  test(`mh${flags.length ? ` (${flags.join()})` : ""}: two instances with one seed pick the same real for 10k random clients`, (t) => {
    const clients = randomClients(10_000);
    const first = picksFor(instanceService([0, 1, 2, 3, 4], 1, 0xc0ffee, flags), clients);
    const second = picksFor(instanceService([3, 0, 4, 2, 1], 40, 0xc0ffee, flags), clients);
    const differing = first.filter((real, i) => real !== second[i]).length;
    t.is(differing, 0, `${differing} of 10000 clients picked another real on the second instance`);
    t.is(new Set(first).size, REALS.length, "every real took clients");
    t.false(first.some((r) => r.startsWith("none")));

    // The seed is in the table: another one moves clients (so a shared seed is what makes them agree).
    const otherSeed = picksFor(instanceService([0, 1, 2, 3, 4], 1, 0xbeef, flags), clients);
    t.true(otherSeed.filter((real, i) => real !== first[i]).length > 1000);
  });
}

test("mh: the table does not depend on the order of the reals nor on the default seed being left out", (t) => {
  const mh = schedulerFor("mh");
  const inOrder = mh.build({ reals: REALS });
  const reversed = mh.build({ reals: [...REALS].reverse(), seed: 0 });
  const keyAt = (reals: typeof REALS, slot: number) => `${reals[slot]!.ip}:${reals[slot]!.port}`;
  const reversedReals = [...REALS].reverse();
  let differing = 0;
  for (let i = 0; i < inOrder.slots.length; i++) if (keyAt(REALS, inOrder.slots[i]!) !== keyAt(reversedReals, reversed.slots[i]!)) differing++;
  t.is(differing, 0);
});

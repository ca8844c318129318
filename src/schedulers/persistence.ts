// Persistence as the data plane takes it (native/flow/persistence_templates.h): the settings, and which
// reals keep their persistent clients. As IPVS decides it (ip_vs_check_template, with the default
// expire_quiescent_template=0): a real that is up keeps them, drained to weight 0 or not; a real that
// is down, or removed from the service (a draining one included), loses them, so their next connection
// is scheduled afresh.
import type { PersistenceConfig } from "../config";
import type { NativeService } from "../native";

export function persistenceFor(
  settings: PersistenceConfig,
  reals: ReadonlyArray<{ up: boolean }>,
  endpoints: ReadonlyArray<{ id: number }>,
): NonNullable<NativeService["persistence"]> {
  // `reals` are the configured reals; `endpoints` list them first, then the draining ones.
  const keepingRealIds = reals.flatMap((real, i) => (real.up ? [endpoints[i]!.id] : []));
  return { timeoutS: settings.timeoutS, netmask: settings.netmask, keepingRealIds };
}

// A configuration change, short enough for a log record and an event: which services and reals it
// added, removed, re-weighted or given another forwarding, and which settings changed (forwarding and
// fullnat among them). Keys only, read from diffConfig.

import { realForwarding, realKey, serviceKey, type ConfigDiff } from "../config";

/** A short, log-friendly description of a change: which service, real, weight; or a reload's diff. */
export type ChangeSummary = Readonly<Record<string, unknown>>;

/** The reals whose own forwarding changed, as "ip:port nat->dr" (the service's mode where a real has none). */
function forwardingChanges(c: ConfigDiff["changed"][number]): string[] {
  return c.reals.updated
    .map((u) => ({ key: u.key, from: realForwarding(c.old, u.old), to: realForwarding(c.next, u.next) }))
    .filter((u) => u.from !== u.to)
    .map((u) => `${u.key} ${u.from}->${u.to}`);
}

/** What a change did, by service and real. */
export function summarizeDiff(diff: ConfigDiff): ChangeSummary {
  return {
    servicesAdded: diff.added.map(serviceKey),
    servicesRemoved: diff.removed.map(serviceKey),
    servicesChanged: diff.changed.map((c) => ({
      service: c.key,
      ...(c.fields.length > 0 ? { fields: c.fields } : {}),
      ...(c.reals.added.length > 0 ? { realsAdded: c.reals.added.map(realKey) } : {}),
      ...(c.reals.removed.length > 0 ? { realsRemoved: c.reals.removed.map(realKey) } : {}),
      ...(c.reals.updated.length > 0 ? { weights: c.reals.updated.map((u) => `${u.key} ${u.old.weight}->${u.next.weight}`) } : {}),
      ...(forwardingChanges(c).length > 0 ? { realsForwarding: forwardingChanges(c) } : {}),
      ...(c.reals.reordered ? { realsReordered: true } : {}),
    })),
    servicesUnchanged: diff.unchanged.length,
    settingsChanged: diff.settings,
  };
}

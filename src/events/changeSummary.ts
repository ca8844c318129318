// A configuration change, short enough for a log record and an event: which services and reals it
// added, removed or re-weighted, and which settings changed. Keys only, read from diffConfig.

import { realKey, serviceKey, type ConfigDiff } from "../config";

/** A short, log-friendly description of a change: which service, real, weight; or a reload's diff. */
export type ChangeSummary = Readonly<Record<string, unknown>>;

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
      ...(c.reals.reordered ? { realsReordered: true } : {}),
    })),
    servicesUnchanged: diff.unchanged.length,
    settingsChanged: diff.settings,
  };
}

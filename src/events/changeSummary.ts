// A configuration change in one line, for events and logs: what a reload or an API call did to
// services and reals, read from diffConfig.

import type { ConfigDiff } from "../config";

export function summarizeChange(diff: ConfigDiff): string {
  const parts: string[] = [];
  for (const s of diff.added) parts.push(`service ${s.vip}:${s.port}/${s.protocol} added (${s.reals.length} reals)`);
  for (const s of diff.removed) parts.push(`service ${s.vip}:${s.port}/${s.protocol} removed`);
  for (const c of diff.changed) {
    const what = [
      ...c.fields.map((f) => `${f} changed`),
      ...c.reals.added.map((r) => `real ${r.ip}:${r.port} added (weight ${r.weight})`),
      ...c.reals.removed.map((r) => `real ${r.ip}:${r.port} removed`),
      ...c.reals.updated.map((u) => `real ${u.key} weight ${u.old.weight} -> ${u.next.weight}`),
      ...(c.reals.reordered && c.reals.added.length === 0 && c.reals.removed.length === 0 ? ["reals reordered"] : []),
    ];
    parts.push(`service ${c.key}: ${what.join(", ")}`);
  }
  for (const setting of diff.settings) parts.push(`${setting} changed`);
  return parts.length === 0 ? "no change" : parts.join("; ");
}

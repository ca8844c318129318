// What travels over the control socket: JSON bodies, and errors as { error: { code, message } }.

/** Routes the daemon serves by default. */
export const CONTROL_ROUTES = Object.freeze({
  status: "GET /status",
  conns: "GET /conns",
  /** Per service and real: connections, packets and bytes in and out, and their rates (ipvsadm --stats --rate). */
  stats: "GET /stats",
  health: "GET /health",
  /** Prometheus text (not JSON), the same as the metrics listener's. */
  metrics: "GET /metrics",
  /** natlb's events as they happen, one JSON object per line (`?after=SEQ` replays what followed SEQ). */
  events: "GET /events",
} as const);

export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE";

/** A route key: method, one space, absolute path without query, e.g. `GET /status`. */
export type RouteKey = `${HttpMethod} /${string}`;

export interface ControlErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

export function isControlErrorBody(value: unknown): value is ControlErrorBody {
  if (typeof value !== "object" || value === null) return false;
  const error = (value as { error?: unknown }).error;
  return (
    typeof error === "object" &&
    error !== null &&
    typeof (error as { message?: unknown }).message === "string" &&
    typeof (error as { code?: unknown }).code === "string"
  );
}

/**
 * JSON.stringify that also takes the values native counters come as: bigint becomes a number
 * when it is exactly representable, otherwise a decimal string; typed arrays become arrays.
 */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "bigint") return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
    if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<number | bigint>);
    return v;
  }) ?? "null";
}

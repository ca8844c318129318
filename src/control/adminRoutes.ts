// The control socket's write routes (ipvsadm's -A/-E/-D/-a/-e/-d, drain, and reload): each body is validated
// here, at the edge, with the config's own schemas (unknown fields, wrong types and bad values are a
// 400 naming the field), then handed to the Balancer's typed API, which validates the whole next
// configuration again. Every change is logged with who asked (auditLog.ts). Changes live in the
// running daemon only (like ipvsadm without --save): edit the config file and `natlb reload` to keep them.
import { z } from "zod";
import { FIXED_SERVICE_FIELDS, type Balancer, type DrainHandle, type ServiceRef } from "../balancer";
import { CONFIG_LIMITS, formatFieldPath, realSchema, serviceKey, serviceSchema, type ConfigDiff } from "../config";
import { DRAIN_THENS, type DrainResult } from "../drain";
import { GATEWAY_ROLES } from "../native";
import { ApiError } from "../errors";
import { summarizeDiff, withChangeOrigin, type ChangeSummary } from "../events";
import { serviceName, type AuditLog } from "./auditLog";
import { StreamAnswer, type ControlHandler, type ControlHandlers, type ControlRequest } from "./server";

const port = z.number().int().min(1).max(65535);
const serviceRef = z.strictObject({ vip: z.string(), port, protocol: z.enum(["tcp", "udp"]).optional() });
const realRef = z.strictObject({ ip: z.string(), port: port.optional() });

const bodies = {
  addService: serviceSchema,
  removeService: serviceRef,
  addReal: z.strictObject({ service: serviceRef, real: realSchema }),
  updateReal: z.strictObject({ service: serviceRef, real: realRef, weight: z.number().int().min(0).max(65535) }),
  removeReal: z.strictObject({ service: serviceRef, real: realRef }),
  /** `set`: service fields to replace; the service that results is checked with serviceSchema (editedService). */
  editService: z.strictObject({ service: serviceRef, set: z.record(z.string(), z.unknown()) }),
  drainReal: z.strictObject({
    service: serviceRef,
    real: realRef,
    /** Seconds from now; absent: wait until no connection is left. */
    timeoutS: z.number().positive().max(CONFIG_LIMITS.maxTimeoutSeconds).optional(),
    then: z.enum(DRAIN_THENS).optional(),
    /** Answer line by line (progress, then the result) instead of at once. */
    wait: z.boolean().optional(),
  }),
  /** POST /ha: the pair's role; `reason` says who decided (`natlb ha notify` passes keepalived's arguments). */
  setRole: z.strictObject({ role: z.enum(GATEWAY_ROLES), reason: z.string().min(1).max(200).optional() }),
  /** POST /reload re-reads the daemon's own file: it takes no body (an empty object is allowed). */
  reload: z.union([z.undefined(), z.strictObject({})]),
};

/** What the routes change: the Balancer's typed API (an interface, so tests can stand in for it). */
export type ChangeTarget = Pick<Balancer, "addService" | "removeService" | "updateService" | "addReal" | "updateReal" | "removeReal" | "beginDrain" | "currentConfig" | "setGatewayRole">;

function bodyOf<S extends z.ZodType>(schema: S, request: ControlRequest, within?: string): z.output<S> {
  const parsed = schema.safeParse(request.body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = [...(within === undefined ? [] : [within]), ...(issue?.path ?? [])];
    const where = path.length === 0 ? "the body" : formatFieldPath(path);
    // The config schemas word their object errors for files; an unknown field deserves its own words.
    const problem =
      issue?.code === "unrecognized_keys"
        ? `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}: remove ${issue.keys.length > 1 ? "them" : "it"}`
        : (issue?.message ?? "invalid");
    throw new ApiError(`${request.method} ${request.path}: bad request body at ${where}: ${problem}`, { code: "E_BAD_BODY" });
  }
  return parsed.data;
}

/**
 * An exec health check runs a program as natlb's user: only the config file (root's to write) may
 * name one, never a request over the socket.
 */
function refuseExecHealthCheck(service: { readonly healthCheck?: { readonly type?: string | undefined } | undefined }): void {
  if (service.healthCheck?.type === "exec") {
    throw new ApiError(
      'an "exec" health check runs a program as natlb\'s user, so it cannot be set over the control socket: put it in the config file and run `natlb reload`',
      { status: 403, code: "E_EXEC_CHECK_FROM_FILE_ONLY" },
    );
  }
}

/**
 * The running service with `set` applied, checked with the config's own service schema (so fields
 * other helpers add to it are editable too): a 400 naming the field when it does not pass.
 */
function editedService(balancer: ChangeTarget, request: ControlRequest, body: z.infer<typeof bodies.editService>): void {
  const fixed = FIXED_SERVICE_FIELDS.filter((field) => Object.hasOwn(body.set, field));
  if (fixed.length > 0) {
    throw new ApiError(
      `${request.method} ${request.path}: set cannot change ${fixed.join(", ")}: ${fixed.includes("reals") ? "change reals with `natlb real add|weight|remove`; " : ""}the service's address names it`,
      { code: "E_FIXED_FIELD" },
    );
  }
  const key = serviceKey({ vip: body.service.vip, port: body.service.port, protocol: body.service.protocol ?? "tcp" });
  const running = balancer.currentConfig.services.find((s) => serviceKey(s) === key);
  if (running === undefined) throw new ApiError(`no service ${key}: list services with \`natlb status\``, { status: 404 });
  bodyOf(serviceSchema, { ...request, body: { ...(JSON.parse(JSON.stringify(running)) as Record<string, unknown>), ...body.set } }, "set");
}

/** A waiting drain's answer: a line when it starts, one per change of its count, then its result (or error). */
async function* drainLines(handle: DrainHandle, progress: number[], wake: { now: () => void }, stop: AbortSignal): AsyncGenerator<unknown> {
  yield { type: "started", service: handle.service, real: handle.real, then: handle.then, ...(handle.deadline !== undefined ? { deadline: new Date(handle.deadline).toISOString() } : {}) };
  let outcome: DrainResult | undefined;
  let failure: unknown;
  let settled = false;
  handle.result.then((r) => (outcome = r), (e: unknown) => (failure = e)).finally(() => {
    settled = true;
    wake.now();
  });
  const aborted = () => wake.now();
  stop.addEventListener("abort", aborted, { once: true });
  try {
    for (;;) {
      while (progress.length > 0) yield { type: "progress", connectionsLeft: progress.shift() };
      if (settled || stop.aborted) break;
      await new Promise<void>((resolve) => (wake.now = resolve));
    }
  } finally {
    stop.removeEventListener("abort", aborted);
  }
  if (stop.aborted) return;
  if (outcome) yield { type: "finished", ...outcome };
  else {
    const error = failure instanceof ApiError ? failure : undefined;
    yield { type: "error", error: { code: error?.code ?? "E_INTERNAL", message: failure instanceof Error ? failure.message : String(failure) } };
  }
}

function ref(service: z.infer<typeof serviceRef>): ServiceRef {
  return { vip: service.vip, port: service.port, ...(service.protocol ? { protocol: service.protocol } : {}) };
}

/** A new real's name: its port defaults to the service's, as in the config. */
function newRealName(real: { readonly ip: string; readonly port?: number | undefined }, servicePort: number): string {
  return `${real.ip}:${real.port ?? servicePort}`;
}

/**
 * A write route: validate the body, apply it, log who did it and what it changed. `apply` may return
 * a summary that only the change itself can tell (a reload's diff).
 */
function audited<S extends z.ZodType>(
  audit: AuditLog,
  route: string,
  schema: S,
  describe: (body: z.output<S>) => ChangeSummary,
  apply: (body: z.output<S>) => Promise<ChangeSummary | void>,
): ControlHandler {
  return async (request) => {
    const body = bodyOf(schema, request);
    const summary = describe(body);
    const origin = { via: "control socket", peer: request.peer } as const;
    try {
      const outcome = await withChangeOrigin(origin, () => apply(body));
      audit.applied(origin, route, outcome ?? summary);
    } catch (error) {
      audit.refused(origin, route, summary, error);
      throw error;
    }
    return { ok: true };
  };
}

export function adminRoutes(balancer: ChangeTarget, reload: () => Promise<ConfigDiff>, audit: AuditLog): ControlHandlers {
  /** The running real a reference names (a reference without a port matches any port), for the record. */
  const runningReal = (service: z.infer<typeof serviceRef>, real: z.infer<typeof realRef>) =>
    balancer.currentConfig.services
      .find((s) => s.vip === service.vip && s.port === service.port && s.protocol === (service.protocol ?? "tcp"))
      ?.reals.find((r) => r.ip === real.ip && (real.port === undefined || r.port === real.port));
  const existingName = (service: z.infer<typeof serviceRef>, real: z.infer<typeof realRef>): string => {
    const found = runningReal(service, real);
    return found ? `${found.ip}:${found.port}` : real.port === undefined ? real.ip : `${real.ip}:${real.port}`;
  };
  const editService = audited(
    audit,
    "PUT /services",
    bodies.editService,
    (b) => ({ service: serviceName(b.service), set: b.set }),
    (b) => {
      refuseExecHealthCheck(b.set as { healthCheck?: { type?: string } });
      return balancer.updateService(ref(b.service), b.set);
    },
  );
  return {
    "POST /services": audited(
      audit,
      "POST /services",
      bodies.addService,
      (s) => ({
        service: serviceName(s),
        scheduler: s.scheduler,
        forwarding: s.forwarding,
        ...(s.fullnat ? { fullnat: s.fullnat.localAddresses } : {}),
        reals: s.reals.map((r) => `${r.ip}:${r.port} weight ${r.weight}${r.forwarding !== undefined ? ` forwarding ${r.forwarding}` : ""}`),
      }),
      (s) => {
        refuseExecHealthCheck(s);
        return balancer.addService({ ...s });
      },
    ),
    "DELETE /services": audited(
      audit,
      "DELETE /services",
      bodies.removeService,
      (s) => ({ service: serviceName(s) }),
      (s) => balancer.removeService(ref(s)),
    ),
    "POST /reals": audited(
      audit,
      "POST /reals",
      bodies.addReal,
      (b) => ({
        service: serviceName(b.service), real: newRealName(b.real, b.service.port), weight: b.real.weight,
        ...(b.real.forwarding !== undefined ? { forwarding: b.real.forwarding } : {}),
      }),
      (b) => balancer.addReal(ref(b.service), b.real),
    ),
    "PUT /reals": audited(
      audit,
      "PUT /reals",
      bodies.updateReal,
      (b) => ({ service: serviceName(b.service), real: existingName(b.service, b.real), weight: `${runningReal(b.service, b.real)?.weight ?? "?"}->${b.weight}` }),
      (b) => balancer.updateReal(ref(b.service), b.real.port === undefined ? { ip: b.real.ip } : { ip: b.real.ip, port: b.real.port }, { weight: b.weight }),
    ),
    "DELETE /reals": audited(
      audit,
      "DELETE /reals",
      bodies.removeReal,
      (b) => ({ service: serviceName(b.service), real: existingName(b.service, b.real) }),
      (b) => balancer.removeReal(ref(b.service), b.real.port === undefined ? { ip: b.real.ip } : { ip: b.real.ip, port: b.real.port }),
    ),
    "PUT /services": (request) => {
      // The edited service is checked first, so a bad field is a 400 that names it under `set`.
      editedService(balancer, request, bodyOf(bodies.editService, request));
      return editService(request);
    },
    "POST /reals/drain": async (request) => {
      const body = bodyOf(bodies.drainReal, request);
      const summary = { service: serviceName(body.service), real: existingName(body.service, body.real), drain: body.then ?? "keep", ...(body.timeoutS ? { timeoutS: body.timeoutS } : {}) };
      const origin = { via: "control socket", peer: request.peer } as const;
      const progress: number[] = [];
      const wake = { now: () => {} };
      let handle: DrainHandle;
      try {
        handle = await withChangeOrigin(origin, () =>
          balancer.beginDrain(ref(body.service), body.real.port === undefined ? { ip: body.real.ip } : { ip: body.real.ip, port: body.real.port }, {
            ...(body.timeoutS !== undefined ? { deadline: Date.now() + body.timeoutS * 1000 } : {}),
            ...(body.then !== undefined ? { then: body.then } : {}),
            ...(body.wait ? { onProgress: (left: number) => { progress.push(left); wake.now(); } } : {}),
          }),
        );
        audit.applied(origin, "POST /reals/drain", summary);
      } catch (error) {
        audit.refused(origin, "POST /reals/drain", summary, error);
        throw error;
      }
      if (!body.wait) {
        return { ok: true, service: handle.service, real: handle.real, then: handle.then, ...(handle.deadline !== undefined ? { deadline: new Date(handle.deadline).toISOString() } : {}) };
      }
      // The drain goes on in the daemon if the client goes away; only the answer stops.
      const stop = new AbortController();
      return new StreamAnswer(drainLines(handle, progress, wake, stop.signal), stop);
    },
    "POST /ha": async (request) => {
      const body = bodyOf(bodies.setRole, request);
      const reason = body.reason ?? `natlb ha ${body.role}`;
      const origin = { via: "control socket", peer: request.peer } as const;
      try {
        const change = withChangeOrigin(origin, () => balancer.setGatewayRole(body.role, reason));
        audit.applied(origin, "POST /ha", { ha: `${change.previous}->${change.role}`, reason });
        return { ok: true, ...change };
      } catch (error) {
        audit.refused(origin, "POST /ha", { ha: body.role, reason }, error);
        throw error;
      }
    },
    "POST /reload": audited(
      audit,
      "POST /reload",
      bodies.reload,
      () => ({ reload: "the daemon's config file" }),
      async () => summarizeDiff(await reload()),
    ),
  };
}

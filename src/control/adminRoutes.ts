// The control socket's write routes (ipvsadm's -A/-D/-a/-e/-d, and reload): each body is validated
// here, then handed to the Balancer's typed API, which validates the whole next configuration again.
// Changes live in the running daemon only (like ipvsadm without --save): edit the config file and
// `natlb reload` to keep them.
import { z } from "zod";
import type { Balancer, ServiceRef } from "../balancer";
import { ApiError } from "../errors";
import type { ControlHandlers, ControlRequest } from "./server";

const serviceRef = z.strictObject({
  vip: z.string(),
  port: z.number().int().min(1).max(65535),
  protocol: z.enum(["tcp", "udp"]).optional(),
});
const realRef = z.strictObject({ ip: z.string(), port: z.number().int().min(1).max(65535).optional() });
const realInput = z.record(z.string(), z.unknown());

const bodies = {
  addService: z.record(z.string(), z.unknown()),
  removeService: serviceRef,
  addReal: z.strictObject({ service: serviceRef, real: realInput }),
  updateReal: z.strictObject({ service: serviceRef, real: realRef, weight: z.number().int().min(0).max(65535) }),
  removeReal: z.strictObject({ service: serviceRef, real: realRef }),
};

function bodyOf<T>(schema: z.ZodType<T>, request: ControlRequest): T {
  const parsed = schema.safeParse(request.body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ApiError(`bad request body at ${issue?.path.join(".") || "(body)"}: ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}

/**
 * An exec health check runs a program as natlb's user: only the config file (root's to write) may
 * name one, never a request over the socket.
 */
function refuseExecHealthCheck(service: Record<string, unknown>): void {
  const check = service.healthCheck;
  if (typeof check === "object" && check !== null && (check as Record<string, unknown>).type === "exec") {
    throw new ApiError(
      'an "exec" health check runs a program as natlb\'s user, so it cannot be set over the control socket: put it in the config file and run `natlb reload`',
      { status: 403, code: "E_EXEC_CHECK_FROM_FILE_ONLY" },
    );
  }
}

function ref(service: z.infer<typeof serviceRef>): ServiceRef {
  return { vip: service.vip, port: service.port, ...(service.protocol ? { protocol: service.protocol } : {}) };
}

export function adminRoutes(balancer: Balancer, reload: () => Promise<void>): ControlHandlers {
  const done = { ok: true } as const;
  return {
    "POST /services": async (request) => {
      const service = bodyOf(bodies.addService, request);
      refuseExecHealthCheck(service);
      await balancer.addService(service);
      return done;
    },
    "DELETE /services": async (request) => {
      await balancer.removeService(ref(bodyOf(bodies.removeService, request)));
      return done;
    },
    "POST /reals": async (request) => {
      const body = bodyOf(bodies.addReal, request);
      await balancer.addReal(ref(body.service), body.real);
      return done;
    },
    "PUT /reals": async (request) => {
      const body = bodyOf(bodies.updateReal, request);
      await balancer.updateReal(ref(body.service), body.real.port === undefined ? { ip: body.real.ip } : body.real, { weight: body.weight });
      return done;
    },
    "DELETE /reals": async (request) => {
      const body = bodyOf(bodies.removeReal, request);
      await balancer.removeReal(ref(body.service), body.real.port === undefined ? { ip: body.real.ip } : body.real);
      return done;
    },
    "POST /reload": async () => {
      await reload();
      return done;
    },
  };
}

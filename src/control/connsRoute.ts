// GET /conns: one page of the flow map, filtered (service, real, client, state), with a default
// limit; `next` goes on where the page ended. Query parameters are validated here (400 otherwise).
import type { Balancer } from "../balancer";
import { connectionQueryFromParams } from "../flows/connectionQuery";
import type { ControlHandlers } from "./server";

export function connsRoute(balancer: Balancer): ControlHandlers {
  return {
    "GET /conns": (request) => balancer.connections(connectionQueryFromParams(request.query)),
  };
}

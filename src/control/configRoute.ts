// GET /config (`natlb save`, like ipvsadm -S): the running configuration as a config file, with the
// changes made over the socket since start, every default filled in. Admin role: the file may name
// health-check commands and hosts that readers of status need not see.
import type { Balancer } from "../balancer";
import type { ControlHandlers } from "./server";

export function configRoute(balancer: Pick<Balancer, "currentConfig">): ControlHandlers {
  return {
    "GET /config": () => balancer.currentConfig,
  };
}

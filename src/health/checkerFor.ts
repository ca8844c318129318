// Which checker serves a service's health-check block.

import type { ActiveHealthCheckConfig } from "../config";
import { TcpHealthChecker, type HealthChecker } from "./checker";
import { ExecHealthChecker } from "./execChecker";
import { HttpHealthChecker } from "./httpChecker";
import { UdpHealthChecker } from "./udpChecker";

export function checkerFor(config: ActiveHealthCheckConfig, serviceKey: string): HealthChecker {
  switch (config.type) {
    case "tcp":
      return new TcpHealthChecker();
    case "http":
    case "https":
      return new HttpHealthChecker(config);
    case "udp":
      return new UdpHealthChecker(config);
    case "exec":
      return new ExecHealthChecker(config, serviceKey);
  }
}

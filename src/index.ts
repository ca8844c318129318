// natlb's public TypeScript API.
export { Balancer } from "./balancer";
export type {
  BalancerOptions, BalancerStatus, RealInput, RealRef, RealStatus, ServiceInput, ServiceRef, ServiceStatus,
} from "./balancer";
export { parseConfig, parseConfigText, loadConfigFile, diffConfig, DEFAULT_TIMEOUTS } from "./config";
export type { HealthCheckConfig, NatlbConfig, Protocol, RealConfig, ServiceConfig, Timeouts } from "./config";
export { ApiError, ConfigError, ControlError, KernelSetupError, NatlbError, PrivilegeError } from "./errors";
export type { Connection, FlowStateName } from "./flows/flowMap";
export type { EngineCounters } from "./native";
export { SCHEDULER_NAMES, schedulerFor } from "./schedulers";
export type { SchedulerName, SchedulerPolicy, SelectionTable } from "./schedulers";
export { startDaemon } from "./daemon";
export { removeNatlbKernelState } from "./kernel";

// natlb's public TypeScript API.
export { Balancer } from "./balancer";
export type {
  BalancerOptions, BalancerStatus, DrainHandle, DrainOptions, FallbackStatus, RealHealthView, RealInput, RealRef, RealStatus, ServiceEdit, ServiceInput, ServiceRef, ServiceStatus,
} from "./balancer";
export { DRAIN_THENS } from "./drain";
export type { DrainResult, DrainThen } from "./drain";
export {
  parseConfig, parseConfigText, loadConfigFile, diffConfig, DEFAULT_TIMEOUTS, DEAD_REAL_FLOWS, HEALTH_CHECK_TYPES, RECEIVE_PATHS, WORKER_THREADS_SETTINGS,
} from "./config";
export { COUNTER_NAMES, GATEWAY_ROLES } from "./native";
export type { GatewayRole } from "./native";
export type { HaStatus, RoleChange } from "./ha/pairRole";
export type { HealthCheckConfig, NatlbConfig, PersistenceConfig, Protocol, RealConfig, ServiceConfig, SyncConfig, SyncEndpoint, Timeouts } from "./config";
export type { SyncStatus } from "./sync/syncStatus";
export type { SyncCounters } from "./native";
export { ApiError, BgpError, ConfigError, ControlError, KernelSetupError, NatlbError, PrivilegeError } from "./errors";
export type { Connection, FlowStateName } from "./flows/flowMap";
export { DEFAULT_CONNECTION_PAGE, MAX_CONNECTION_PAGE } from "./flows/connectionQuery";
export type { ConnectionPage, ConnectionQuery } from "./flows/connectionQuery";
export type { EngineCounters } from "./native";
export { SCHEDULER_FLAGS, SCHEDULER_NAMES, schedulerFor } from "./schedulers";
export type { SchedulerFlag, SchedulerName, SchedulerPolicy, SelectionTable } from "./schedulers";
export { startDaemon } from "./daemon";
export { withChangeOrigin, PRESSURE_LIMITS } from "./events";
export type { ChangeOrigin, NatlbEvent, NatlbEventBody, NatlbEventType, WatchOptions } from "./events";
export { removeNatlbKernelState } from "./kernel";
export { TRAFFIC_COUNT_NAMES } from "./stats/trafficCounts";
export type { TrafficCountName, TrafficCounts, TrafficRates } from "./stats/trafficCounts";
export type { BalancerStats, RealTrafficStats, ServiceTrafficStats } from "./stats/trafficStats";
// Types the exports above refer to, so that users can name them and the API reference (docs/api/) links them.
export type {
  ConfigDiff, ControlAccessConfig, DeadRealFlows, FloodProtection, GlobalSetting, GroupRef, InterfacesConfig, KernelFastPathSetting, MetricsConfig, NoHealthCheckConfig, ReceivePath, WorkerLayout, WorkerThreadsSetting,
  ReceivePathConfig, RealUpdate, ServiceChange, TcpHealthCheckConfig, HttpHealthCheckConfig, UdpHealthCheckConfig, ExecHealthCheckConfig,
  ActiveHealthCheckConfig, HealthCheckTiming, FlapDampingConfig, FallbackRealConfig, ServiceField, HaConfig,
} from "./config";
export type {
  ApiErrorOptions, ConfigErrorOptions, ConfigIssue, ControlErrorCode, KernelSetupErrorOptions, NatlbErrorOptions, PrivilegeErrorOptions,
} from "./errors";
export type { FlowMapStats, RealCounts } from "./flows/flowMap";
export type { LinkState } from "./gateway/linkStates";
export type { CounterName, NativeInterface } from "./native";
export type { PickMode, SchedulerInput, SchedulerReal } from "./schedulers";
export type { Daemon, DaemonOptions } from "./daemon";
export type { BgpConfig, BgpStatus } from "./bgp";

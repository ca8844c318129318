export { TcpHealthChecker } from "./checker";
export type { CheckOutcome, CheckResult, HealthChecker, HealthTarget, TcpHealthCheckerOptions } from "./checker";
export { RealHealthState } from "./state";
export type { HealthThresholds } from "./state";
export { HealthMonitor } from "./monitor";
export type { HealthChange, HealthMonitorOptions, MonitorCheckConfig, RealHealthStatus, RealRef } from "./monitor";

export { EventHub } from "./eventHub";
export type { EventHubOptions, WatchOptions } from "./eventHub";
export { PressureWatch, PRESSURE_LIMITS } from "./pressureWatch";
export type { PressureSample } from "./pressureWatch";
export { withChangeOrigin, currentChangeOrigin, SIGHUP_ORIGIN } from "./changeOrigin";
export type { ChangeOrigin } from "./changeOrigin";
export { summarizeDiff } from "./changeSummary";
export type { ChangeSummary } from "./changeSummary";
export type { NatlbEvent, NatlbEventBody, NatlbEventType } from "./natlbEvent";

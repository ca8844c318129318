export { EventHub } from "./eventHub";
export type { EventHubOptions, WatchOptions } from "./eventHub";
export { PressureWatch, PRESSURE_LIMITS } from "./pressureWatch";
export type { PressureSample } from "./pressureWatch";
export { withChangeOrigin, currentChangeOrigin } from "./changeOrigin";
export type { ChangeOrigin, NatlbEvent, NatlbEventBody, NatlbEventType } from "./natlbEvent";

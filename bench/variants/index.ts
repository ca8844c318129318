// The compared paths, in the benchmark's base order (rotated every round).
import { haproxy } from "./haproxy";
import { kernelNat } from "./kernelNat";
import { natlb, natlbAfPacket, natlbDr, natlbFullnat, natlbThreadPerInterface, natlbUserSpace } from "./natlb";
import { nodePipeProxy } from "./nodePipeProxy";
import { plainForwarding } from "./plain";
import type { Variant } from "./types";

export const ALL_VARIANTS: readonly Variant[] = [plainForwarding, kernelNat, haproxy, nodePipeProxy, natlb, natlbUserSpace, natlbAfPacket, natlbThreadPerInterface, natlbDr, natlbFullnat];
export type { ActiveVariant, BenchServices, Variant, VariantId } from "./types";
export { VariantUnavailableError } from "./types";

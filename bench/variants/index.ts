// The compared paths, in the benchmark's base order (rotated every round).
import { haproxy } from "./haproxy";
import { kernelNat } from "./kernelNat";
import { natlb, natlbAfPacket, natlbThreadPerInterface, natlbUserSpace } from "./natlb";
import { nodePipeProxy } from "./nodePipeProxy";
import { plainForwarding } from "./plain";
import type { Variant } from "./types";

export const ALL_VARIANTS: readonly Variant[] = [plainForwarding, kernelNat, haproxy, nodePipeProxy, natlb, natlbUserSpace, natlbAfPacket, natlbThreadPerInterface];
export type { ActiveVariant, BenchServices, Variant, VariantId } from "./types";

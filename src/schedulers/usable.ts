// Input checks and the "usable real" filter every policy shares.

import { ApiError } from "../errors";
import type { SchedulerInput } from "./types";

/** A real that may receive new connections, with its index in the input list. */
export interface UsableReal {
  readonly index: number;
  readonly key: string; // "ip:port", the identity hashing policies use
  readonly weight: number;
}

/** Slots are Uint16 indexes, so no more reals than that (the config allows far fewer). */
const MAX_REALS = 65536;

/** Validates the input and returns the reals that are up with weight > 0, in input order. */
export function usableReals(input: SchedulerInput): UsableReal[] {
  if (input.reals.length > MAX_REALS) {
    throw new ApiError(`scheduler: ${input.reals.length} real servers given, at most ${MAX_REALS} fit a selection table`);
  }
  const usable: UsableReal[] = [];
  input.reals.forEach((real, index) => {
    if (!Number.isInteger(real.weight) || real.weight < 0 || real.weight > 65535) {
      throw new ApiError(`scheduler: reals[${index}].weight must be an integer 0..65535, got ${String(real.weight)}`);
    }
    if (real.up && real.weight > 0) usable.push({ index, key: `${real.ip}:${real.port}`, weight: real.weight });
  });
  return usable;
}

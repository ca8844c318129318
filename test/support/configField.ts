// One top-level config field under test: a valid config with that field set, its parse, and its
// refusal (for the tests of a single field, e.g. receivePath and kernelFastPath).
import { parseConfig, type NatlbConfig } from "../../src/config";
import { ConfigError } from "../../src/errors";

/** A minimal valid service. */
export const SERVICE = { vip: "198.18.0.100", port: 80, reals: [{ ip: "198.18.1.11", port: 8080 }] };

export interface ConfigField {
  /** A valid config with the field set to `value` (left out when undefined). */
  withValue(value: unknown): Record<string, unknown>;
  parsed(value: unknown): NatlbConfig;
  /** The ConfigError parsing `value` raises; fails the test when there is none. */
  refusal(value: unknown): ConfigError;
}

export function configField(name: string): ConfigField {
  const withValue = (value: unknown) => (value === undefined ? { services: [SERVICE] } : { services: [SERVICE], [name]: value });
  return {
    withValue,
    parsed: (value) => parseConfig(withValue(value)),
    refusal: (value) => configRefusal(withValue(value), `${name} ${JSON.stringify(value)}`),
  };
}

/** The ConfigError parsing `config` raises; throws (failing the test) when it is accepted or fails otherwise. */
export function configRefusal(config: unknown, what = "the config"): ConfigError {
  try {
    parseConfig(config);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw new Error(`expected a ConfigError for ${what}, got ${String(error)}`);
  }
  throw new Error(`${what} was accepted`);
}

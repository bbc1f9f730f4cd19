import type { Parameters as FcParameters } from 'fast-check'

/**
 * fast-check settings shared by every `*.prop.test.ts`: a seed from `PROP_SEED` (fixed under CI; printed on failure
 * by fast-check together with the counterexample path; replay with PROP_SEED=<seed> PROP_PATH=<path>)
 * and a run count from `PROP_RUNS` for long soaks.
 */
/** The seed properties use under CI (`CI` set) when `PROP_SEED` is not given. */
export const CI_SEED = 20261126

export function propConfig<T>(defaultRuns: number): FcParameters<T> {
  // CI runs a fixed seed so that a submission's result does not depend on luck; local runs explore.
  const seed = process.env.PROP_SEED !== undefined ? Number(process.env.PROP_SEED) : process.env.CI ? CI_SEED : undefined
  const path = process.env.PROP_PATH
  const numRuns = process.env.PROP_RUNS === undefined ? defaultRuns : Number(process.env.PROP_RUNS)
  return { numRuns, ...(seed === undefined ? {} : { seed }), ...(path === undefined ? {} : { path }), verbose: 1 }
}

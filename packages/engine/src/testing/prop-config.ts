import type { Parameters as FcParameters } from 'fast-check'

/**
 * fast-check settings shared by every `*.prop.test.ts`: a seed from `PROP_SEED` (printed on failure
 * by fast-check together with the counterexample path; replay with PROP_SEED=<seed> PROP_PATH=<path>)
 * and a run count from `PROP_RUNS` for long soaks.
 */
export function propConfig<T>(defaultRuns: number): FcParameters<T> {
  const seed = process.env.PROP_SEED === undefined ? undefined : Number(process.env.PROP_SEED)
  const path = process.env.PROP_PATH
  const numRuns = process.env.PROP_RUNS === undefined ? defaultRuns : Number(process.env.PROP_RUNS)
  return { numRuns, ...(seed === undefined ? {} : { seed }), ...(path === undefined ? {} : { path }), verbose: 1 }
}

/**
 * A fixed pseudo-random sequence for model-based tests (a linear congruential generator):
 * the same seed gives the same steps on every run. `next(n)` is an integer in [0, n).
 */
export const seededInts = (seed: number) => {
  let state = seed
  return (n: number): number => {
    state = (state * 1103515245 + 12345) % 2147483648
    return Math.floor(state / 65536) % n // the high bits: the low bits of an LCG repeat quickly
  }
}

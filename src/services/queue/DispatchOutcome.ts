/** What the dispatcher says about an event the queue handed it (see EventQueue.consume). */
import { Duration } from "effect"

export type DispatchOutcome =
  | { readonly _tag: "Done" }
  /** Keep it: back to the front of its channel, which waits `after` before starting again. */
  | { readonly _tag: "Retry"; readonly after: Duration.Duration }
  /**
   * Keep it: back to the front of its channel, held until `releaseHeld`; `fallback` is the longest
   * it waits should no release come.
   */
  | { readonly _tag: "Held"; readonly fallback: Duration.Duration }

export const DispatchOutcome = {
  done: { _tag: "Done" } as DispatchOutcome,
  retry: (after: Duration.DurationInput): DispatchOutcome => ({ _tag: "Retry", after: Duration.decode(after) }),
  held: (fallback: Duration.DurationInput): DispatchOutcome => ({ _tag: "Held", fallback: Duration.decode(fallback) })
}

/**
 * How the executor reads a run's stream: a plain JavaScript reader that hands items to the run's
 * fiber in batches, and the loop that applies them in order.
 */
import { Data, Effect } from "effect"

/** Something the client threw; classified once, against the state at that moment. */
export class ClientFailure extends Data.TaggedError("ClientFailure")<{ readonly cause: unknown }> {}

/**
 * Reads an async iterator from plain JavaScript and hands its items over in batches: each pull
 * answers every item that arrived since the last one (waiting only when none has), so a run whose
 * items arrive together resumes its fiber once for them rather than once per item. The reader
 * stops after the end of the stream or a failure, which is answered after the items before it.
 * `stop` ends the reading (the caller aborts the request too, which ends a pending `next()`).
 */
export const batchReader = <A>(iterator: AsyncIterator<A>) => {
  let buffered: Array<A> = []
  let ended: { readonly failure: ClientFailure | null } | null = null
  let waiting: ((batch: Effect.Effect<ReadonlyArray<A> | null, ClientFailure>) => void) | null = null
  let stopped = false
  const answer = () => {
    const resume = waiting
    if (resume === null || (buffered.length === 0 && ended === null)) return
    waiting = null
    // Taken when the fiber runs again, not now: items arriving until then join the batch.
    resume(Effect.suspend(takeNow))
  }
  const takeNow = (): Effect.Effect<ReadonlyArray<A> | null, ClientFailure> => {
    if (buffered.length > 0) {
      const batch = buffered
      buffered = []
      return Effect.succeed(batch)
    }
    if (ended === null) return Effect.succeed([])
    return ended.failure === null ? Effect.succeed(null) : Effect.fail(ended.failure)
  }
  const pump = async () => {
    try {
      for (;;) {
        const step = await iterator.next()
        if (stopped) return
        if (step.done === true) break
        buffered.push(step.value)
        answer()
      }
      ended = { failure: null }
    } catch (cause) {
      ended = { failure: new ClientFailure({ cause }) }
    }
    answer()
  }
  void pump()
  return {
    /** The items that arrived since the last call (at least one), or null at the end of the stream. */
    next: Effect.suspend(() =>
      buffered.length > 0 || ended !== null
        ? takeNow()
        : Effect.async<ReadonlyArray<A> | null, ClientFailure>((resume) => {
          waiting = resume
          return Effect.sync(() => {
            waiting = null
          })
        })
    ),
    stop: () => {
      stopped = true
    }
  }
}

/**
 * Hands each item of the stream to `handle`, in order, until the stream ends or `handle` fails.
 * A plain loop over batches rather than an Effect Stream: a run streams a handful of items, and
 * Stream's per-element machinery cost more than handling them.
 *
 * `claimRunId` tells whether an item is the first to show the run id. From that item on, the
 * stream is read with the run id as a log annotation, set once for the rest of the stream rather
 * than around each line; `onRunId` runs first, inside it.
 */
export const forEachItem = <A, E>(
  reader: { readonly next: Effect.Effect<ReadonlyArray<A> | null, ClientFailure> },
  claimRunId: (item: A) => string | undefined,
  onRunId: (runId: string) => Effect.Effect<void>,
  handle: (item: A) => Effect.Effect<void, E>
): Effect.Effect<void, E | ClientFailure> => {
  const loop = (annotated: boolean, pending: ReadonlyArray<A>): Effect.Effect<void, E | ClientFailure> =>
    Effect.gen(function*() {
      let batch: ReadonlyArray<A> | null = pending
      for (;;) {
        for (let i = 0; i < batch.length; i++) {
          const item = batch[i] as A
          const runId = annotated ? undefined : claimRunId(item)
          if (runId !== undefined) {
            const rest = Effect.zipRight(Effect.zipRight(onRunId(runId), handle(item)), loop(true, batch.slice(i + 1)))
            return yield* Effect.annotateLogs(rest, { runId })
          }
          yield* handle(item)
        }
        batch = yield* reader.next
        if (batch === null) return
      }
    })
  return loop(false, [])
}

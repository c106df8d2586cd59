/**
 * When each benchmark mention reached the fake Letta, with sub-millisecond resolution.
 *
 * FakeLetta stamps requests with Date.now() (1 ms steps, too coarse for a ~1 ms median). Its one
 * synchronous hook is the request-waiter filter, called right after each request is recorded; a
 * waiter that never matches sees every request at arrival, and we stamp it with performance.now()
 * on the same clock as the send stamps. The fake calls every filter over all recorded requests on
 * each arrival (O(n) per request), so this is used for the 2 000-mention run only, never for the
 * 10 000-mention burst; that cost is in the parent, not in the bot's CPU numbers.
 */
import { Deferred, Effect, Exit, FiberId, type Scope } from "effect"
import type { FakeLetta } from "../test/fakes/FakeLetta.js"
import { tokenOf } from "./world.js"

export interface Arrivals {
  /** mention number -> performance.now() at arrival */
  readonly at: ReadonlyMap<number, number>
  /** Completes when `count` distinct mentions have arrived. */
  readonly awaitCount: (count: number) => Effect.Effect<void>
}

export const trackArrivals = (letta: FakeLetta): Effect.Effect<Arrivals, never, Scope.Scope> =>
  Effect.gen(function*() {
    const at = new Map<number, number>()
    let lastSeq = 0
    let goal: { readonly count: number; readonly done: Deferred.Deferred<void> } | undefined
    yield* letta.awaitRequest(Number.MAX_SAFE_INTEGER, (request) => {
      if (request.seq <= lastSeq) return false
      lastSeq = request.seq
      if (request.kind !== "messages") return false
      const token = tokenOf(JSON.stringify(request.body))
      if (token !== undefined && !at.has(token)) at.set(token, performance.now())
      if (goal !== undefined && at.size >= goal.count) Deferred.unsafeDone(goal.done, Exit.void)
      return false
    }).pipe(Effect.forkScoped)
    return {
      at,
      awaitCount: (count) =>
        Effect.suspend(() => {
          if (at.size >= count) return Effect.void
          const done = Deferred.unsafeMake<void>(FiberId.none)
          goal = { count, done }
          return Deferred.await(done)
        })
    }
  })

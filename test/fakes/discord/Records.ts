/**
 * What the Discord fake recorded: every REST request and every gateway event, in append-only
 * journals that tests read and wait on (a wait is answered by a past entry or the next match, so
 * no test polls or sleeps).
 */
import { Data, Deferred, type Duration, Effect, Exit, FiberId } from "effect"
import type { ShardPair } from "./Shards.js"

export class FakeTimeout extends Data.TaggedError("FakeTimeout")<{ readonly waitingFor: string }> {}

export interface RecordedRequest {
  /** Position in the record: tests take `requests().length` as a mark and wait for later ones. */
  readonly index: number
  readonly method: string
  /** The path after `/api/v10`, percent-decoded (`@original`), without the query string. */
  readonly path: string
  readonly query: string
  readonly body: unknown
  readonly at: number
  readonly status: number
  /** No route matched: the fake answered 404. An unexpected call the test may want to see. */
  readonly unknownRoute: boolean
}

export type GatewayEventKind =
  | "connect"
  | "identify"
  | "ready"
  | "resume"
  | "resumed"
  | "invalid-session"
  | "close"

export interface GatewayRecord {
  readonly index: number
  readonly kind: GatewayEventKind
  readonly at: number
  /** The close code, for "close". */
  readonly code?: number
  /** The sequence number the client resumed from, for "resume". */
  readonly seq?: number
  /** Dispatches the client had missed and were sent again, for "resumed". */
  readonly replayed?: number
  /** The shard, for "identify" (as asked) and "ready". */
  readonly shard?: ShardPair
}

/** An append-only record with waiters: a wait is answered by a past entry or the next match. */
export class Journal<A extends { readonly index: number }> {
  private readonly entries: Array<A> = []
  private readonly waiters = new Set<{ predicate: (a: A) => boolean; deferred: Deferred.Deferred<A> }>()

  get all(): ReadonlyArray<A> {
    return this.entries
  }

  get size(): number {
    return this.entries.length
  }

  push(make: (index: number) => A): A {
    const entry = make(this.entries.length)
    this.entries.push(entry)
    for (const waiter of this.waiters) {
      if (waiter.predicate(entry)) {
        this.waiters.delete(waiter)
        Deferred.unsafeDone(waiter.deferred, Exit.succeed(entry))
      }
    }
    return entry
  }

  waitFor(predicate: (a: A) => boolean, label: string, timeout: Duration.DurationInput): Effect.Effect<A, FakeTimeout> {
    return Effect.suspend(() => {
      const found = this.entries.find(predicate)
      if (found !== undefined) return Effect.succeed(found)
      const waiter = { predicate, deferred: Deferred.unsafeMake<A>(FiberId.none) }
      this.waiters.add(waiter)
      return Deferred.await(waiter.deferred).pipe(
        Effect.timeoutFail({ duration: timeout, onTimeout: () => new FakeTimeout({ waitingFor: label }) }),
        Effect.ensuring(Effect.sync(() => this.waiters.delete(waiter)))
      )
    })
  }
}

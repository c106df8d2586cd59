/**
 * The event queue: bounded per partition (each guild, and the DM partition), FIFO per channel,
 * one dispatch per channel every `spacing` (start to start), one run per lane, at most `parallel`
 * runs per agent, a global cap on runs in flight, and fairness by age between ready channels.
 * The lane is decided by the event's `conversationMode` (set at intake): `channel`, its channel's
 * own Letta conversation, so channels of one agent run in parallel up to its cap; `shared` (and an
 * event without a mode), the agent's default conversation, so one run of that agent at a time.
 * A pause (of a partition, or global) stops dispatch, never intake: a paused partition keeps
 * accepting events up to its capacity.
 * An event the dispatcher holds (`DispatchOutcome.held`, e.g. turned away by an open circuit
 * breaker) waits at the front of its channel until `releaseHeld` (the breaker admits traffic
 * again), or its fallback time should no release come.
 *
 * All decisions are pure transitions on one immutable `State` held in a Ref, applied with
 * `Ref.modify`, so that concurrent producers, `clear` and the dispatcher never see or leave a
 * half-made decision. Effects (journal writes, logs, forks) happen around the transitions.
 * Time comes from the Effect Clock only, so TestClock drives every timing rule.
 *
 * This module holds the service: its ports, its public types, `make` and the `EventQueue` tag.
 * What follows a consumer's return is in ./Completion.ts, the log lines of the transitions in
 * ./QueueNotes.ts, the consumer's answer in ./DispatchOutcome.ts. The pure part is in ./state/:
 * the state (QueueState.ts), its transitions (Intake.ts, Scheduling.ts), the index of waiting
 * channels (DispatchIndex.ts), the dedup window (DedupWindow.ts), the persistent FIFO (Fifo.ts)
 * and the stats report (Stats.ts).
 */
import { Clock, Context, Deferred, Duration, Effect, FiberSet, HashMap, Layer, Option, Queue, Ref } from "effect"
import { AuroraConfig } from "../../domain/Config.js"
import type { DuplicateEvent, QueueFull, StorageError } from "../../domain/Errors.js"
import { Partition, type QueuedEvent } from "../../domain/Event.js"
import { makeCompletion } from "./Completion.js"
import type { DispatchOutcome } from "./DispatchOutcome.js"
import { stage } from "../health/LatencyTrace.js"
import { EventJournal } from "./EventJournal.js"
import { emitNotes } from "./QueueNotes.js"
import { QueuePolicy } from "./QueuePolicy.js"
import type { DedupLimits } from "./state/DedupWindow.js"
import { accept, admit, clearPartition, restoreAll, unadmit } from "./state/Intake.js"
import { initialState, type Note, partitionOf, type State, withPartition } from "./state/QueueState.js"
import { decide, refreshIndex, releaseHeld, type ScheduleLimits, sweepIdle, sweepIntervalMs } from "./state/Scheduling.js"
import { type QueueStats, queueStats } from "./state/Stats.js"

// --- ports and public types ---------------------------------------------------

export { DispatchOutcome } from "./DispatchOutcome.js"

export type PauseTarget = Partition | "global"

export type { AgentStats, ChannelStats, InFlightStats, PartitionStats, QueueStats } from "./state/Stats.js"

export interface EventQueueOptions {
  /** Runs in flight at once, all agents together (default 16). */
  readonly concurrency?: number | undefined
  /** Dedup window: the last N message ids (default 10 000) ... */
  readonly dedupMaxSize?: number | undefined
  /** ... or those seen within this age (default 1 hour), whichever is smaller. */
  readonly dedupMaxAge?: Duration.DurationInput | undefined
}

export interface OfferOptions {
  readonly requeue?: boolean | undefined
}

export interface EventQueueService {
  /**
   * Accepts an event, after recording it in the journal. With `requeue` (an admin retrying a dead
   * letter) the dedup window is not consulted: only an event already queued or in flight is a duplicate.
   */
  readonly offer: (
    event: QueuedEvent,
    options?: OfferOptions
  ) => Effect.Effect<void, QueueFull | DuplicateEvent | StorageError>
  /** Puts back events replayed after a restart, in the given order: no journal write, no capacity check. */
  readonly restore: (events: ReadonlyArray<QueuedEvent>) => Effect.Effect<void>
  /** The dispatcher loop: hands ready events to `consumer`, each in its own fiber. */
  readonly consume: <R>(
    consumer: (event: QueuedEvent) => Effect.Effect<DispatchOutcome, never, R>
  ) => Effect.Effect<never, never, R>
  /** Stops dispatch (intake continues). */
  readonly pause: (target: PauseTarget) => Effect.Effect<void>
  readonly resume: (target: PauseTarget) => Effect.Effect<void>
  /**
   * Every held event may start again now (whatever its fallback), as its channel's spacing, its
   * lane, its agent's cap and the pauses allow; a hold settled later by a run already started does
   * not apply.
   */
  readonly releaseHeld: Effect.Effect<void>
  readonly isPaused: (target: PauseTarget) => Effect.Effect<boolean>
  /** Drops the partition's pending events (not the ones in flight); returns how many. */
  readonly clear: (partition: Partition) => Effect.Effect<number>
  /** Re-reads the QueuePolicy now (call after a setting changed). */
  readonly limitsChanged: Effect.Effect<void>
  /** No new dispatch starts from now on (graceful shutdown). */
  readonly stopDispatch: Effect.Effect<void>
  /** Resolves when no event is in flight. */
  readonly awaitIdle: Effect.Effect<void>
  readonly stats: Effect.Effect<QueueStats>
}

// --- the service -----------------------------------------------------------------------

export const make = (options: EventQueueOptions = {}) =>
  Effect.gen(function*() {
    const policy = yield* QueuePolicy
    const journal = yield* EventJournal
    const concurrency = Math.max(1, options.concurrency ?? 16)
    const dedupLimits: DedupLimits = {
      maxSize: Math.max(1, options.dedupMaxSize ?? 10_000),
      maxAgeMs: Duration.toMillis(Duration.decode(options.dedupMaxAge ?? Duration.hours(1)))
    }
    const state = yield* Ref.make(initialState)
    // One pending wake-up is enough: the loop re-reads everything when it wakes.
    const wakeups = yield* Queue.dropping<void>(1)
    const wake = Effect.asVoid(Queue.offer(wakeups, undefined))

    /** Runs a transition that may ask for log lines. */
    const transition = <A>(f: (s: State, notes: Array<Note>) => [A, State]): Effect.Effect<A> =>
      Effect.flatMap(
        Ref.modify(state, (s): [readonly [A, ReadonlyArray<Note>], State] => {
          const notes: Array<Note> = []
          const [a, next] = f(s, notes)
          return [[a, notes], next]
        }),
        ([a, notes]) => (notes.length === 0 ? Effect.succeed(a) : Effect.as(emitNotes(notes), a))
      )

    // Uninterruptible: between the admission and the journal append an interruption would leave a
    // reserved slot behind, or a journalled event the queue does not hold. Untraced: no span for
    // each of the hundreds of offers a second a busy bot makes.
    const offer = Effect.fnUntraced(function*(
      event: QueuedEvent,
      options?: OfferOptions
    ) {
      const partition = Partition.ofEvent(event)
      const { capacity } = yield* policy.limits(partition)
      const now = yield* Clock.currentTimeMillis
      const admission = yield* transition((s, notes) =>
        admit(s, event, partition, capacity, now, dedupLimits, options?.requeue === true, notes)
      )
      if (admission._tag === "Rejected") return yield* admission.error
      yield* stage(event.messageId, "admitted")
      yield* journal.append(event).pipe(
        Effect.onError(() => Ref.update(state, (s) => unadmit(s, event, partition, admission.seq)))
      )
      yield* stage(event.messageId, "journaled")
      yield* transition((s, notes) => [undefined, accept(s, event, partition, admission.seq, notes)])
      yield* wake
    }, Effect.uninterruptible)

    const restore = (events: ReadonlyArray<QueuedEvent>) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        yield* transition((s, notes) => [undefined, restoreAll(s, events, now, dedupLimits, notes)])
        yield* wake
      })

    const clear = Effect.fn("EventQueue.clear")(function*(partition: Partition) {
      const dropped = yield* transition((s, notes) => clearPartition(s, partition, notes))
      yield* Effect.forEach(
        dropped,
        (event) =>
          journal.remove(event.messageId).pipe(
            Effect.catchAll((error) =>
              Effect.logError("journal: could not remove a cleared event", error).pipe(
                Effect.annotateLogs({ messageId: event.messageId })
              )
            )
          ),
        { discard: true }
      )
      yield* wake
      return dropped.length
    })

    const setPaused = (target: PauseTarget, paused: boolean) =>
      Ref.update(state, (s) =>
        target === "global"
          ? { ...s, globalPaused: paused }
          : withPartition(s, { ...partitionOf(s, target), paused }))

    const isPaused = (target: PauseTarget) =>
      Effect.map(Ref.get(state), (s) => (target === "global" ? s.globalPaused : partitionOf(s, target).paused))

    /**
     * Reads the limits (spacing, per-agent cap) of every partition with a fresh lane (and, when a
     * sweep is due, of every partition with an idle one), then decides atomically.
     */
    const decideNow = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const snapshot = yield* Ref.get(state)
      const sweep = now - snapshot.sweptAt >= sweepIntervalMs
      const partitions = new Map<string, Partition>()
      for (const key of snapshot.index.fresh) {
        const lane = Option.getOrUndefined(HashMap.get(snapshot.lanes, key))
        if (lane !== undefined) partitions.set(Partition.key(lane.partition), lane.partition)
      }
      if (sweep) {
        for (const lane of HashMap.values(snapshot.lanes)) {
          if (!lane.inFlight) partitions.set(Partition.key(lane.partition), lane.partition)
        }
      }
      const limits = new Map<string, ScheduleLimits>()
      for (const [key, partition] of partitions) {
        const read = yield* policy.limits(partition)
        limits.set(key, { spacing: Duration.toMillis(read.spacing), parallel: Math.max(1, read.parallel) })
      }
      return yield* transition((s, notes) => decide(sweep ? sweepIdle(s, now, limits) : s, now, limits, concurrency, notes))
    })

    const { complete } = makeCompletion(state, journal, wake)

    const consume = <R>(consumer: (event: QueuedEvent) => Effect.Effect<DispatchOutcome, never, R>) =>
      Effect.gen(function*() {
        const fibers = yield* FiberSet.make<void, never>()
        const closing = yield* Ref.make(false)
        // Finalizers run in reverse: this one runs before the FiberSet interrupts the consumers.
        yield* Effect.addFinalizer(() => Ref.set(closing, true))
        // Deciding and forking are one uninterruptible step, so no event is marked in flight
        // without a fiber to settle it. The forked fiber inherits that mask; only the consumer
        // itself is made interruptible, and the settlement after it always runs.
        const step = Effect.gen(function*() {
          const decision = yield* Effect.uninterruptible(
            Effect.tap(decideNow, (decision) =>
              Effect.forEach(
                decision.starts,
                (start) =>
                  FiberSet.run(
                    fibers,
                    Effect.interruptible(
                      Effect.zipRight(stage(start.event.messageId, "dispatch"), Effect.suspend(() => consumer(start.event)))
                    ).pipe(
                      Effect.exit,
                      Effect.flatMap((exit) => complete(start.event, exit, closing))
                    )
                  ),
                { discard: true }
              ))
          )
          if (decision.wakeAt === null) return yield* Queue.take(wakeups)
          const now = yield* Clock.currentTimeMillis
          yield* Effect.timeoutOption(Queue.take(wakeups), Duration.millis(Math.max(0, decision.wakeAt - now)))
        })
        return yield* Effect.forever(step)
      }).pipe(Effect.scoped)

    const awaitIdle = Effect.gen(function*() {
      const waiter = yield* Deferred.make<void>()
      const idle = yield* Ref.modify(state, (s): [boolean, State] =>
        HashMap.size(s.running) === 0 ? [true, s] : [false, { ...s, idleWaiters: [...s.idleWaiters, waiter] }])
      if (!idle) {
        yield* Deferred.await(waiter)
      }
    })

    const stats = Effect.gen(function*() {
      const s = yield* Ref.get(state)
      const capacities = new Map<string, number>()
      for (const p of HashMap.values(s.partitions)) {
        capacities.set(Partition.key(p.partition), (yield* policy.limits(p.partition)).capacity)
      }
      return queueStats(s, capacities, dedupLimits.maxSize)
    })

    return EventQueue.of({
      offer,
      restore,
      consume,
      pause: (target) =>
        setPaused(target, true),
      resume: (target) =>
        Effect.zipRight(setPaused(target, false), wake),
      releaseHeld: Effect.zipRight(Ref.update(state, releaseHeld), wake),
      isPaused,
      clear,
      limitsChanged: Effect.zipRight(Ref.update(state, refreshIndex), wake),
      stopDispatch: Ref.update(state, (s) => ({ ...s, stopped: true })),
      awaitIdle,
      stats
    })
  })

export class EventQueue extends Context.Tag("aurora/EventQueue")<EventQueue, EventQueueService>() {
  static readonly make = make
  static readonly layer = (options: EventQueueOptions = {}): Layer.Layer<EventQueue, never, QueuePolicy | EventJournal> =>
    Layer.effect(EventQueue, make(options))
  /** At most AURORA_MAX_CONCURRENT_RUNS runs in flight. */
  static readonly Default: Layer.Layer<EventQueue, never, QueuePolicy | EventJournal | AuroraConfig> = Layer.effect(
    EventQueue,
    Effect.flatMap(AuroraConfig, (config) => make({ concurrency: config.maxConcurrentRuns }))
  )
}

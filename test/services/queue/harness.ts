/** Shared set-up for the EventQueue suites: a Ref-backed policy, a recording journal, probes. */
import { Clock, Deferred, Duration, Effect, Queue, Ref } from "effect"
import { StorageError } from "../../../src/domain/Errors.js"
import { Partition, type QueuedEvent } from "../../../src/domain/Event.js"
import { EventJournal } from "../../../src/services/queue/EventJournal.js"
import { DispatchOutcome, type EventQueueOptions, type EventQueueService, make } from "../../../src/services/queue/EventQueue.js"
import { type PartitionLimits, QueuePolicy } from "../../../src/services/queue/QueuePolicy.js"

export const event = (id: string, over: Partial<QueuedEvent> = {}): QueuedEvent => ({
  messageId: id,
  guildId: "g1",
  channelId: "c1",
  authorId: "u1",
  agentId: "a1",
  trigger: "mention",
  prompt: `prompt ${id}`,
  enqueuedAt: 0,
  attempts: 0,
  ...over
})

export const g1 = Partition.guild("g1")
export const g2 = Partition.guild("g2")

export interface Harness {
  readonly queue: EventQueueService
  /** Limits per partition key; `default` for the others. Changed live by tests. */
  readonly limits: Ref.Ref<Record<string, PartitionLimits>>
  /** Journal calls in order: "append:m1", "remove:m1", "update:m1:1". */
  readonly journal: Effect.Effect<ReadonlyArray<string>>
  readonly failAppend: Ref.Ref<boolean>
}

export const setup = (
  config: {
    readonly capacity?: number
    readonly spacing?: Duration.DurationInput
    /** The per-agent cap (default 8, the setting's default). */
    readonly parallel?: number
    readonly options?: EventQueueOptions
  } = {}
) =>
  Effect.gen(function*() {
    const limits = yield* Ref.make<Record<string, PartitionLimits>>({
      default: { capacity: config.capacity ?? 50, spacing: Duration.decode(config.spacing ?? 0), parallel: config.parallel ?? 8 }
    })
    // A plain array: copying an immutable one per call would make the 100 000-offer test quadratic.
    const calls: Array<string> = []
    const journal = Effect.sync((): ReadonlyArray<string> => [...calls])
    const failAppend = yield* Ref.make(false)
    const record = (line: string) => Effect.sync(() => void calls.push(line))
    const queue = yield* make(config.options).pipe(
      Effect.provideService(QueuePolicy, {
        limits: (partition) => Effect.map(Ref.get(limits), (all) => all[Partition.key(partition)] ?? all["default"]!)
      }),
      Effect.provideService(EventJournal, {
        append: (e) =>
          Effect.flatMap(Ref.get(failAppend), (fail) =>
            fail
              ? Effect.fail(new StorageError({ operation: "append", reason: "disk full" }))
              : record(`append:${e.messageId}`)),
        remove: (id) => record(`remove:${id}`),
        update: (e) => record(`update:${e.messageId}:${e.attempts}`),
        runStarted: (id) => record(`runStarted:${id}`),
        runIdSeen: (id, runId) => record(`runIdSeen:${id}:${runId}`),
        sideEffectSeen: (id) => record(`sideEffectSeen:${id}`),
        fallbackRecorded: (id) => record(`fallbackRecorded:${id}`),
        load: Effect.succeed([])
      })
    )
    return { queue, limits, journal, failAppend } satisfies Harness
  })

export const setCapacity = (h: Harness, capacity: number) =>
  Ref.update(h.limits, (all) => ({ ...all, default: { ...all["default"]!, capacity } }))

/** Sets one partition's limits (by partition key), the others keep the default. */
export const setLimits = (h: Harness, partitionKey: string, limits: Partial<PartitionLimits>) =>
  Ref.update(h.limits, (all) => ({ ...all, [partitionKey]: { ...(all[partitionKey] ?? all["default"]!), ...limits } }))

export interface Started {
  readonly event: QueuedEvent
  readonly at: number
  /** Ends this dispatch with the given outcome (Done by default). */
  readonly finish: (outcome?: DispatchOutcome) => Effect.Effect<void>
}

/**
 * A consumer that reports each start (with the Clock time) and waits for the test to finish it,
 * unless `auto` answers at once.
 */
export const probe = Effect.gen(function*() {
  const started = yield* Queue.unbounded<Started>()
  const consumer = (auto?: (event: QueuedEvent) => DispatchOutcome) => (e: QueuedEvent) =>
    Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      const done = yield* Deferred.make<DispatchOutcome>()
      yield* Queue.offer(started, { event: e, at, finish: (o = DispatchOutcome.done) => Deferred.succeed(done, o) })
      if (auto !== undefined) return auto(e)
      return yield* Deferred.await(done)
    })
  return {
    started,
    consumer,
    next: Queue.take(started),
    /** Starts seen so far, without waiting. */
    drain: Queue.takeAll(started).pipe(Effect.map((chunk) => Array.from(chunk)))
  }
})

/** Lets forked fibers (the loop, consumers) run until they block. */
export const settle = Effect.repeatN(Effect.yieldNow(), 40)

export const ids = (started: ReadonlyArray<Started>) => started.map((s) => s.event.messageId)

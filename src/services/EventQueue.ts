/**
 * The event queue: bounded per partition (each guild, and the DM partition), FIFO per channel,
 * one dispatch per channel every `spacing` (start to start), one run per agent, a global cap on
 * runs in flight, and fairness by age between ready channels.
 *
 * All decisions are pure transitions on one immutable `State` held in a Ref, applied with
 * `Ref.modify`, so that concurrent producers, `clear` and the dispatcher never see or leave a
 * half-made decision. Effects (journal writes, logs, forks) happen around the transitions.
 * Time comes from the Effect Clock only, so TestClock drives every timing rule.
 */
import {
  Cause,
  Clock,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  FiberSet,
  HashMap,
  HashSet,
  Layer,
  List,
  Option,
  Order,
  Queue,
  RedBlackTree,
  Ref
} from "effect"
import { DuplicateEvent, QueueFull, type StorageError } from "../domain/Errors.js"
import { Partition, type QueuedEvent } from "../domain/Event.js"
import { EventJournal } from "./EventJournal.js"

// --- ports and public types ---------------------------------------------------

export interface PartitionLimits {
  /** Maximum pending events (the ones in flight do not count). */
  readonly capacity: number
  /** Minimum time between two dispatch starts in one channel. */
  readonly spacing: Duration.Duration
}

/**
 * Where the queue reads a partition's limits: the capacity on every offer, the spacing whenever a
 * channel's next start is placed, and the spacing of every waiting channel again on
 * `limitsChanged`, so that a change applies at once.
 */
export class QueuePolicy extends Context.Tag("aurora/QueuePolicy")<
  QueuePolicy,
  { readonly limits: (partition: Partition) => Effect.Effect<PartitionLimits> }
>() {
  /** The same limits for every partition. */
  static readonly fixed = (limits: { readonly capacity: number; readonly spacing: Duration.DurationInput }) =>
    Layer.succeed(QueuePolicy, {
      limits: () => Effect.succeed({ capacity: limits.capacity, spacing: Duration.decode(limits.spacing) })
    })
}

/** What the dispatcher says about an event it was handed. */
export type DispatchOutcome =
  | { readonly _tag: "Done" }
  /** Keep it: back to the front of its channel, which waits `after` before starting again. */
  | { readonly _tag: "Retry"; readonly after: Duration.Duration }

export const DispatchOutcome = {
  done: { _tag: "Done" } as DispatchOutcome,
  retry: (after: Duration.DurationInput): DispatchOutcome => ({ _tag: "Retry", after: Duration.decode(after) })
}

export type PauseTarget = Partition | "global"

export interface ChannelStats {
  readonly channelId: string
  readonly pending: number
}

export interface PartitionStats {
  readonly partition: Partition
  readonly key: string
  readonly pending: number
  readonly inFlight: number
  readonly capacity: number
  readonly paused: boolean
  /** enqueuedAt (epoch ms) of the oldest pending event; null when none is pending. */
  readonly oldestEnqueuedAt: number | null
  readonly channels: ReadonlyArray<ChannelStats>
}

export interface InFlightStats {
  readonly messageId: string
  readonly agentId: string
  readonly channelId: string
  readonly partition: string
  readonly startedAt: number
}

export interface QueueStats {
  readonly partitions: ReadonlyArray<PartitionStats>
  readonly inFlight: ReadonlyArray<InFlightStats>
  readonly rejected: { readonly full: number; readonly duplicate: number }
  readonly globalPaused: boolean
  readonly dispatchStopped: boolean
  readonly dedup: { readonly size: number; readonly maxSize: number }
}

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

// --- a persistent FIFO ----------------------------------------------------------

/**
 * Two cons lists (front, reversed back): O(1) amortised push, pushFront and pop without mutation,
 * so the state can stay immutable and cheap to copy. Invariant: front is empty only if back is.
 */
interface Fifo<A> {
  readonly front: List.List<A>
  readonly back: List.List<A>
  readonly size: number
}

const Fifo = {
  empty: <A>(): Fifo<A> => ({ front: List.nil(), back: List.nil(), size: 0 }),
  push: <A>(q: Fifo<A>, a: A): Fifo<A> =>
    List.isNil(q.front)
      ? { front: List.of(a), back: List.nil(), size: 1 }
      : { front: q.front, back: List.prepend(q.back, a), size: q.size + 1 },
  pushFront: <A>(q: Fifo<A>, a: A): Fifo<A> => ({ front: List.prepend(q.front, a), back: q.back, size: q.size + 1 }),
  peek: <A>(q: Fifo<A>): A | undefined => (List.isCons(q.front) ? q.front.head : undefined),
  pop: <A>(q: Fifo<A>): Fifo<A> => {
    if (List.isNil(q.front)) return q
    const rest = q.front.tail
    return List.isNil(rest)
      ? { front: List.reverse(q.back), back: List.nil(), size: q.size - 1 }
      : { front: rest, back: q.back, size: q.size - 1 }
  },
  toArray: <A>(q: Fifo<A>): Array<A> => [...List.toArray(q.front), ...List.toArray(List.reverse(q.back))]
}

// --- the dedup window -------------------------------------------------------------

interface DedupEntry {
  readonly id: string
  /** Tells this registration from a later one of the same id. */
  readonly seq: number
  readonly at: number
}

/** Ids in arrival order (for eviction) and by id (for lookup); `seen` never outgrows `order`. */
interface DedupWindow {
  readonly order: Fifo<DedupEntry>
  readonly seen: HashMap.HashMap<string, number>
}

interface DedupLimits {
  readonly maxSize: number
  readonly maxAgeMs: number
}

const evictDedup = (w: DedupWindow, now: number, limits: DedupLimits): DedupWindow => {
  let order = w.order
  let seen = w.seen
  for (;;) {
    const oldest = Fifo.peek(order)
    if (oldest === undefined || (order.size <= limits.maxSize && now - oldest.at < limits.maxAgeMs)) break
    order = Fifo.pop(order)
    if (Option.getOrUndefined(HashMap.get(seen, oldest.id)) === oldest.seq) seen = HashMap.remove(seen, oldest.id)
  }
  return { order, seen }
}

const registerDedup = (w: DedupWindow, id: string, seq: number, now: number, limits: DedupLimits): DedupWindow =>
  evictDedup({ order: Fifo.push(w.order, { id, seq, at: now }), seen: HashMap.set(w.seen, id, seq) }, now, limits)

// --- the dispatch index --------------------------------------------------------------

/**
 * The waiting lanes (pending events, none in flight), arranged so that a decision touches only
 * the lanes it can start and the next one to come due, not every channel with a backlog:
 * - fresh: placed by the next decision, which knows their partition's spacing;
 * - timed: their spacing (or retry delay) has not passed yet, by the time it will;
 * - due: their time has come, by the agent of their head, oldest head first; at most one lane
 *   per agent starts (one run per agent), so a decision looks at the oldest due lane of each
 *   free agent only.
 * A changed spacing is applied by `limitsChanged`, which makes every waiting lane fresh again.
 */
interface DispatchIndex {
  readonly slots: HashMap.HashMap<string, Slot>
  readonly fresh: HashSet.HashSet<string>
  readonly timed: RedBlackTree.RedBlackTree<TimedKey, string>
  readonly due: HashMap.HashMap<string, RedBlackTree.RedBlackTree<HeadKey, string>>
}

type Slot =
  | { readonly _tag: "Fresh" }
  | { readonly _tag: "Timed"; readonly key: TimedKey }
  | { readonly _tag: "Due"; readonly agentId: string; readonly key: HeadKey }

/** [due at, lane key]: unique per lane. */
type TimedKey = readonly [number, string]
/** [head's enqueuedAt, head's seq]: unique per pending event, ordered like the queue's fairness. */
type HeadKey = readonly [number, number]

const timedOrder: Order.Order<TimedKey> = Order.tuple(Order.number, Order.string)
const headOrder: Order.Order<HeadKey> = Order.tuple(Order.number, Order.number)

const freshSlot: Slot = { _tag: "Fresh" }

const unslot = (index: DispatchIndex, laneKey: string): DispatchIndex => {
  const slot = Option.getOrUndefined(HashMap.get(index.slots, laneKey))
  if (slot === undefined) return index
  const slots = HashMap.remove(index.slots, laneKey)
  switch (slot._tag) {
    case "Fresh":
      return { ...index, slots, fresh: HashSet.remove(index.fresh, laneKey) }
    case "Timed":
      return { ...index, slots, timed: RedBlackTree.removeFirst(index.timed, slot.key) }
    case "Due": {
      const tree = Option.getOrUndefined(HashMap.get(index.due, slot.agentId))
      if (tree === undefined) return { ...index, slots }
      const rest = RedBlackTree.removeFirst(tree, slot.key)
      return {
        ...index,
        slots,
        due: RedBlackTree.size(rest) === 0 ? HashMap.remove(index.due, slot.agentId) : HashMap.set(index.due, slot.agentId, rest)
      }
    }
  }
}

const slotFresh = (index: DispatchIndex, laneKey: string): DispatchIndex => ({
  ...index,
  slots: HashMap.set(index.slots, laneKey, freshSlot),
  fresh: HashSet.add(index.fresh, laneKey)
})

const slotTimed = (index: DispatchIndex, laneKey: string, dueAt: number): DispatchIndex => {
  const key: TimedKey = [dueAt, laneKey]
  return {
    ...index,
    slots: HashMap.set(index.slots, laneKey, { _tag: "Timed", key }),
    timed: RedBlackTree.insert(index.timed, key, laneKey)
  }
}

const slotDue = (index: DispatchIndex, laneKey: string, head: Pending): DispatchIndex => {
  const agentId = head.event.agentId
  const key: HeadKey = [head.event.enqueuedAt, head.seq]
  const tree = Option.getOrElse(HashMap.get(index.due, agentId), () => RedBlackTree.empty<HeadKey, string>(headOrder))
  return {
    ...index,
    slots: HashMap.set(index.slots, laneKey, { _tag: "Due", agentId, key }),
    due: HashMap.set(index.due, agentId, RedBlackTree.insert(tree, key, laneKey))
  }
}

/** Every waiting lane back to fresh: the next decision places it with the spacing it reads then. */
const refreshIndex = (s: State): State => {
  let index = s.index
  for (const [laneKey, slot] of s.index.slots) {
    if (slot._tag !== "Fresh") index = slotFresh(unslot(index, laneKey), laneKey)
  }
  return { ...s, index }
}

// --- state -----------------------------------------------------------------------

interface Pending {
  readonly event: QueuedEvent
  /** Arrival order: breaks ties between equal enqueuedAt. */
  readonly seq: number
}

/** One channel's FIFO and its timing. */
interface Lane {
  readonly partition: Partition
  readonly channelId: string
  readonly pending: Fifo<Pending>
  readonly inFlight: boolean
  readonly lastStartAt: number | null
  /** Set by a Retry outcome: no start before this time. */
  readonly notBefore: number
}

interface PartitionState {
  readonly partition: Partition
  readonly pending: number
  /** Admitted, waiting for their journal append. They count against capacity. */
  readonly reserved: number
  readonly paused: boolean
  /** Events rejected in the current overflow episode; null outside one. */
  readonly overflow: number | null
}

interface Running extends InFlightStats {
  readonly laneKey: string
  readonly seq: number
}

interface State {
  readonly lanes: HashMap.HashMap<string, Lane>
  /** Where each waiting lane stands; kept in step with `lanes` by `withLane`. */
  readonly index: DispatchIndex
  /** When idle lanes were last swept (see `sweepIdle`). */
  readonly sweptAt: number
  readonly partitions: HashMap.HashMap<string, PartitionState>
  readonly running: HashMap.HashMap<string, Running>
  readonly busyAgents: HashSet.HashSet<string>
  /** Ids reserved, pending or in flight: a duplicate of these is refused whatever the window says. */
  readonly live: HashSet.HashSet<string>
  readonly dedup: DedupWindow
  readonly seq: number
  readonly rejected: { readonly full: number; readonly duplicate: number }
  readonly globalPaused: boolean
  readonly stopped: boolean
  readonly idleWaiters: ReadonlyArray<Deferred.Deferred<void>>
}

const initialState: State = {
  lanes: HashMap.empty(),
  index: {
    slots: HashMap.empty(),
    fresh: HashSet.empty(),
    timed: RedBlackTree.empty(timedOrder),
    due: HashMap.empty()
  },
  sweptAt: 0,
  partitions: HashMap.empty(),
  running: HashMap.empty(),
  busyAgents: HashSet.empty(),
  live: HashSet.empty(),
  dedup: { order: Fifo.empty(), seen: HashMap.empty() },
  seq: 0,
  rejected: { full: 0, duplicate: 0 },
  globalPaused: false,
  stopped: false,
  idleWaiters: []
}

const laneKeyOf = (partitionKey: string, channelId: string) => `${partitionKey}/${channelId}`

const isWaiting = (lane: Lane): boolean => !lane.inFlight && lane.pending.size > 0

/** The lane's earliest next start: its channel's spacing after the last start, and any retry delay. */
const readyAtOf = (lane: Lane, gap: number): number =>
  Math.max(lane.lastStartAt === null ? 0 : lane.lastStartAt + gap, lane.notBefore)

/** Stores a lane, keeping the dispatch index in step with it. */
const withLane = (s: State, key: string, lane: Lane): State => {
  const old = Option.getOrUndefined(HashMap.get(s.lanes, key))
  const lanes = HashMap.set(s.lanes, key, lane)
  // Still waiting with the same head and timing (an event joined the back): its place holds.
  if (old !== undefined && isWaiting(old) && isWaiting(lane) && sameStart(old, lane)) return { ...s, lanes }
  const unslotted = unslot(s.index, key)
  return { ...s, lanes, index: isWaiting(lane) ? slotFresh(unslotted, key) : unslotted }
}

const sameStart = (a: Lane, b: Lane): boolean =>
  Fifo.peek(a.pending) === Fifo.peek(b.pending) && a.lastStartAt === b.lastStartAt && a.notBefore === b.notBefore

const partitionOf = (s: State, partition: Partition): PartitionState =>
  Option.getOrElse(HashMap.get(s.partitions, Partition.key(partition)), () => ({
    partition,
    pending: 0,
    reserved: 0,
    paused: false,
    overflow: null
  }))

const withPartition = (s: State, p: PartitionState): State => ({
  ...s,
  partitions: HashMap.set(s.partitions, Partition.key(p.partition), p)
})

/** Log lines a transition asks for; emitted after the Ref update. */
type Note =
  | { readonly _tag: "OverflowStarted"; readonly partition: string; readonly capacity: number }
  | { readonly _tag: "OverflowEnded"; readonly partition: string; readonly rejected: number }
  | { readonly _tag: "RestoreSkipped"; readonly messageId: string }

/** An overflow episode ends when an event is accepted again or the partition has drained. */
const endOverflow = (p: PartitionState, notes: Array<Note>): PartitionState => {
  if (p.overflow === null) return p
  notes.push({ _tag: "OverflowEnded", partition: Partition.key(p.partition), rejected: p.overflow })
  return { ...p, overflow: null }
}

const emit = (notes: ReadonlyArray<Note>): Effect.Effect<void> =>
  Effect.forEach(
    notes,
    (note) => {
      switch (note._tag) {
        case "OverflowStarted":
          return Effect.logWarning("queue full: rejecting new events").pipe(
            Effect.annotateLogs({ partition: note.partition, capacity: note.capacity })
          )
        case "OverflowEnded":
          return Effect.logWarning(`queue overflow ended: ${note.rejected} event(s) rejected`).pipe(
            Effect.annotateLogs({ partition: note.partition, rejected: note.rejected })
          )
        case "RestoreSkipped":
          return Effect.logWarning("restore: event already queued, skipped").pipe(
            Effect.annotateLogs({ messageId: note.messageId })
          )
      }
    },
    { discard: true }
  )

// --- transitions: intake -------------------------------------------------------------

type Admission =
  | { readonly _tag: "Admitted"; readonly seq: number }
  | { readonly _tag: "Rejected"; readonly error: QueueFull | DuplicateEvent }

const admit = (
  s: State,
  event: QueuedEvent,
  partition: Partition,
  capacity: number,
  now: number,
  limits: DedupLimits,
  requeue: boolean,
  notes: Array<Note>
): [Admission, State] => {
  const dedup = evictDedup(s.dedup, now, limits)
  if (HashSet.has(s.live, event.messageId) || (!requeue && HashMap.has(dedup.seen, event.messageId))) {
    return [
      { _tag: "Rejected", error: new DuplicateEvent({ messageId: event.messageId }) },
      { ...s, dedup, rejected: { ...s.rejected, duplicate: s.rejected.duplicate + 1 } }
    ]
  }
  const p = partitionOf(s, partition)
  if (p.pending + p.reserved >= capacity) {
    const key = Partition.key(partition)
    if (p.overflow === null) notes.push({ _tag: "OverflowStarted", partition: key, capacity })
    return [
      { _tag: "Rejected", error: new QueueFull({ partition: key, capacity, messageId: event.messageId }) },
      withPartition(
        { ...s, dedup, rejected: { ...s.rejected, full: s.rejected.full + 1 } },
        { ...p, overflow: (p.overflow ?? 0) + 1 }
      )
    ]
  }
  const seq = s.seq
  return [
    { _tag: "Admitted", seq },
    withPartition(
      {
        ...s,
        seq: seq + 1,
        live: HashSet.add(s.live, event.messageId),
        dedup: registerDedup(dedup, event.messageId, seq, now, limits)
      },
      { ...p, reserved: p.reserved + 1 }
    )
  ]
}

/** The journal refused the event: it was never accepted, so a later offer of it may succeed. */
const unadmit = (s: State, event: QueuedEvent, partition: Partition, seq: number): State => {
  const p = partitionOf(s, partition)
  const seen = Option.getOrUndefined(HashMap.get(s.dedup.seen, event.messageId)) === seq
    ? HashMap.remove(s.dedup.seen, event.messageId)
    : s.dedup.seen
  return withPartition(
    { ...s, live: HashSet.remove(s.live, event.messageId), dedup: { ...s.dedup, seen } },
    { ...p, reserved: p.reserved - 1 }
  )
}

/** Appends to the back of the event's channel. */
const enqueue = (s: State, entry: Pending, partition: Partition): State => {
  const key = laneKeyOf(Partition.key(partition), entry.event.channelId)
  const lane: Lane = Option.getOrElse(HashMap.get(s.lanes, key), () => ({
    partition,
    channelId: entry.event.channelId,
    pending: Fifo.empty<Pending>(),
    inFlight: false,
    lastStartAt: null,
    notBefore: 0
  }))
  return withLane(s, key, { ...lane, pending: Fifo.push(lane.pending, entry) })
}

const accept = (s: State, event: QueuedEvent, partition: Partition, seq: number, notes: Array<Note>): State => {
  const p = partitionOf(s, partition)
  const next = withPartition(s, endOverflow({ ...p, reserved: p.reserved - 1, pending: p.pending + 1 }, notes))
  return enqueue(next, { event, seq }, partition)
}

const restoreAll = (
  s: State,
  events: ReadonlyArray<QueuedEvent>,
  now: number,
  limits: DedupLimits,
  notes: Array<Note>
): State => {
  let next = s
  for (const event of events) {
    if (HashSet.has(next.live, event.messageId)) {
      notes.push({ _tag: "RestoreSkipped", messageId: event.messageId })
      continue
    }
    const partition = Partition.ofEvent(event)
    const p = partitionOf(next, partition)
    const seq = next.seq
    next = withPartition(
      {
        ...next,
        seq: seq + 1,
        live: HashSet.add(next.live, event.messageId),
        dedup: registerDedup(next.dedup, event.messageId, seq, now, limits)
      },
      { ...p, pending: p.pending + 1 }
    )
    next = enqueue(next, { event, seq }, partition)
  }
  return next
}

const clearPartition = (s: State, partition: Partition, notes: Array<Note>): [ReadonlyArray<QueuedEvent>, State] => {
  const key = Partition.key(partition)
  const dropped: Array<Pending> = []
  let next = s
  for (const [laneKey, lane] of s.lanes) {
    if (Partition.key(lane.partition) !== key || lane.pending.size === 0) continue
    let live = next.live
    for (const entry of Fifo.toArray(lane.pending)) {
      dropped.push(entry)
      live = HashSet.remove(live, entry.event.messageId)
    }
    next = withLane({ ...next, live }, laneKey, { ...lane, pending: Fifo.empty() })
  }
  const p = partitionOf(s, partition)
  return [
    dropped.sort((a, b) => a.seq - b.seq).map((entry) => entry.event),
    withPartition(next, endOverflow({ ...p, pending: 0 }, notes))
  ]
}

// --- transitions: dispatch ----------------------------------------------------------

interface Decision {
  readonly starts: ReadonlyArray<Running & { readonly event: QueuedEvent }>
  /** The earliest time a waiting channel becomes ready; null when only a wake-up can help. */
  readonly wakeAt: number | null
}

const nothingToStart: Decision = { starts: [], wakeAt: null }

/**
 * Places the fresh lanes whose partition's spacing is known, and moves the timed lanes whose time
 * has come to the due ones. A fresh lane of a partition whose limits were not read stays fresh.
 */
const placeWaiting = (s: State, now: number, spacing: ReadonlyMap<string, number>): DispatchIndex => {
  let index = s.index
  const place = (laneKey: string, readyAt: number) => {
    const lane = Option.getOrUndefined(HashMap.get(s.lanes, laneKey))
    const head = lane === undefined ? undefined : Fifo.peek(lane.pending)
    if (head === undefined) return
    index = readyAt > now ? slotTimed(index, laneKey, readyAt) : slotDue(index, laneKey, head)
  }
  for (const laneKey of s.index.fresh) {
    const lane = Option.getOrUndefined(HashMap.get(s.lanes, laneKey))
    const gap = lane === undefined ? undefined : spacing.get(Partition.key(lane.partition))
    if (lane === undefined || gap === undefined) continue
    index = unslot(index, laneKey)
    place(laneKey, readyAtOf(lane, gap))
  }
  for (;;) {
    const first = Option.getOrUndefined(RedBlackTree.first(index.timed))
    if (first === undefined || first[0][0] > now) break
    const laneKey = first[1]
    index = unslot(index, laneKey)
    place(laneKey, first[0][0])
  }
  return index
}

/**
 * Starts every event that may start now: the channel's head, when the channel is idle and its
 * spacing (and any retry delay) has passed, its partition is not paused and its agent is free;
 * oldest heads first, up to the global cap. `spacing` holds the limits of the partitions of the
 * fresh lanes (see DispatchIndex).
 */
const decide = (
  s: State,
  now: number,
  spacing: ReadonlyMap<string, number>,
  concurrency: number,
  notes: Array<Note>
): [Decision, State] => {
  if (s.stopped || s.globalPaused) return [nothingToStart, s]
  let next: State = { ...s, index: placeWaiting(s, now, spacing) }
  const firstTimed = Option.getOrUndefined(RedBlackTree.first(next.index.timed))
  // A fresh lane left unplaced (its limits were not read) asks for another decision at once.
  const wakeAt = HashSet.size(next.index.fresh) > 0 ? now : firstTimed === undefined ? null : firstTimed[0][0]
  if (HashMap.size(next.running) >= concurrency) return [{ starts: [], wakeAt }, next]

  // The oldest due lane of each free agent, skipping paused partitions.
  const ready: Array<{ readonly laneKey: string; readonly lane: Lane; readonly head: Pending }> = []
  for (const [agentId, tree] of next.index.due) {
    if (HashSet.has(next.busyAgents, agentId)) continue
    for (const laneKey of RedBlackTree.values(tree)) {
      const lane = Option.getOrUndefined(HashMap.get(next.lanes, laneKey))
      const head = lane === undefined ? undefined : Fifo.peek(lane.pending)
      if (lane === undefined || head === undefined) continue
      if (Option.exists(HashMap.get(next.partitions, Partition.key(lane.partition)), (p) => p.paused)) continue
      ready.push({ laneKey, lane, head })
      break
    }
  }
  if (ready.length === 0) return [{ starts: [], wakeAt }, next]
  ready.sort((a, b) => a.head.event.enqueuedAt - b.head.event.enqueuedAt || a.head.seq - b.head.seq)

  const starts: Array<Running & { readonly event: QueuedEvent }> = []
  for (const { head, lane, laneKey } of ready) {
    if (HashMap.size(next.running) >= concurrency) break
    const event = head.event
    const partitionKey = Partition.key(lane.partition)
    const run = {
      messageId: event.messageId,
      agentId: event.agentId,
      channelId: event.channelId,
      partition: partitionKey,
      startedAt: now,
      laneKey,
      seq: head.seq
    }
    starts.push({ ...run, event })
    const p = partitionOf(next, lane.partition)
    const remaining = p.pending - 1
    next = withPartition(
      withLane(
        {
          ...next,
          running: HashMap.set(next.running, event.messageId, run),
          busyAgents: HashSet.add(next.busyAgents, event.agentId)
        },
        laneKey,
        { ...lane, pending: Fifo.pop(lane.pending), inFlight: true, lastStartAt: now }
      ),
      remaining === 0 && p.reserved === 0 ? endOverflow({ ...p, pending: 0 }, notes) : { ...p, pending: remaining }
    )
  }
  return [{ starts, wakeAt }, next]
}

/** How often lanes that went idle are looked for, to forget them. */
const sweepIntervalMs = 10_000

/**
 * Forgets the idle channels whose timing has lapsed: they hold no information any more (DM lanes
 * come and go). Done now and then rather than on every decision, which looks at waiting lanes
 * only; `spacing` holds the limits of every partition with an idle lane.
 */
const sweepIdle = (s: State, now: number, spacing: ReadonlyMap<string, number>): State => {
  let lanes = s.lanes
  for (const [laneKey, lane] of s.lanes) {
    if (lane.inFlight || lane.pending.size > 0) continue
    const gap = spacing.get(Partition.key(lane.partition))
    if (gap !== undefined && readyAtOf(lane, gap) <= now) lanes = HashMap.remove(lanes, laneKey)
  }
  return { ...s, lanes, sweptAt: now }
}

/** How a dispatch ended, from the queue's point of view. */
type Settlement =
  | { readonly _tag: "Finished" }
  | { readonly _tag: "Requeue"; readonly event: QueuedEvent; readonly notBefore: number }

/** Frees the channel and the agent; a requeued event goes back to the front of its channel. */
const settle = (
  s: State,
  messageId: string,
  settlement: Settlement
): [ReadonlyArray<Deferred.Deferred<void>>, State] => {
  const run = Option.getOrUndefined(HashMap.get(s.running, messageId))
  if (run === undefined) return [[], s]
  const running = HashMap.remove(s.running, messageId)
  let next: State = { ...s, running, busyAgents: HashSet.remove(s.busyAgents, run.agentId) }
  const lane = Option.getOrUndefined(HashMap.get(s.lanes, run.laneKey))
  if (settlement._tag === "Finished") {
    next = { ...next, live: HashSet.remove(next.live, messageId) }
    if (lane !== undefined) next = withLane(next, run.laneKey, { ...lane, inFlight: false })
  } else if (lane !== undefined) {
    const p = partitionOf(next, lane.partition)
    next = withPartition(
      withLane(next, run.laneKey, {
        ...lane,
        inFlight: false,
        notBefore: Math.max(lane.notBefore, settlement.notBefore),
        pending: Fifo.pushFront(lane.pending, { event: settlement.event, seq: run.seq })
      }),
      { ...p, pending: p.pending + 1 }
    )
  }
  if (HashMap.size(running) > 0 || next.idleWaiters.length === 0) return [[], next]
  return [next.idleWaiters, { ...next, idleWaiters: [] }]
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
        ([a, notes]) => (notes.length === 0 ? Effect.succeed(a) : Effect.as(emit(notes), a))
      )

    // Uninterruptible: between the admission and the journal append an interruption would leave a
    // reserved slot behind, or a journalled event the queue does not hold.
    const offer = Effect.fn("EventQueue.offer", { captureStackTrace: false })(function*(
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
      yield* journal.append(event).pipe(
        Effect.onError(() => Ref.update(state, (s) => unadmit(s, event, partition, admission.seq)))
      )
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
          : withPartition(s, { ...partitionOf(s, target), paused })
      )

    const isPaused = (target: PauseTarget) =>
      Effect.map(Ref.get(state), (s) => (target === "global" ? s.globalPaused : partitionOf(s, target).paused))

    /**
     * Reads the spacing of every partition with a fresh lane (and, when a sweep is due, of every
     * partition with an idle one), then decides atomically.
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
      const spacing = new Map<string, number>()
      for (const [key, partition] of partitions) {
        const limits = yield* policy.limits(partition)
        spacing.set(key, Duration.toMillis(limits.spacing))
      }
      return yield* transition((s, notes) => decide(sweep ? sweepIdle(s, now, spacing) : s, now, spacing, concurrency, notes))
    })

    const finish = (messageId: string, settlement: Settlement) =>
      Effect.gen(function*() {
        const waiters = yield* Ref.modify(state, (s) => settle(s, messageId, settlement))
        yield* Effect.forEach(waiters, (waiter) => Deferred.succeed(waiter, undefined), { discard: true })
        yield* wake
      })

    /** The ids every log line about a dispatched event carries. */
    const eventAnnotations = (event: QueuedEvent) => ({
      messageId: event.messageId,
      channelId: event.channelId,
      agentId: event.agentId
    })

    const logJournalError = (event: QueuedEvent, operation: string) => (error: StorageError) =>
      Effect.logError(`journal: could not ${operation} a dispatched event`, error).pipe(
        Effect.annotateLogs(eventAnnotations(event))
      )

    /**
     * Applies a consumer's outcome. A consumer that failed or died is logged and counted as done
     * (the dispatch program owns its errors); one interrupted because the loop is closing keeps
     * its event, still journalled, at the front of its channel. Only the failure lines are
     * annotated: annotating the whole step would cost more than the step on the common path.
     */
    const complete = (event: QueuedEvent, exit: Exit.Exit<DispatchOutcome>, closing: Ref.Ref<boolean>) =>
      Effect.gen(function*() {
        if (Exit.isSuccess(exit) && exit.value._tag === "Retry") {
          const retried = { ...event, attempts: event.attempts + 1 }
          yield* journal.update(retried).pipe(Effect.catchAll(logJournalError(event, "update")))
          const now = yield* Clock.currentTimeMillis
          const notBefore = now + Duration.toMillis(exit.value.after)
          return yield* finish(event.messageId, { _tag: "Requeue", event: retried, notBefore })
        }
        if (Exit.isFailure(exit)) {
          if (Cause.isInterruptedOnly(exit.cause) && (yield* Ref.get(closing))) {
            return yield* finish(event.messageId, { _tag: "Requeue", event, notBefore: 0 })
          }
          yield* Effect.logError("dispatch consumer failed; the event counts as done", exit.cause).pipe(
            Effect.annotateLogs(eventAnnotations(event))
          )
        }
        yield* journal.remove(event.messageId).pipe(Effect.catchAll(logJournalError(event, "remove")))
        yield* finish(event.messageId, { _tag: "Finished" })
      })

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
                    Effect.interruptible(Effect.suspend(() => consumer(start.event))).pipe(
                      Effect.exit,
                      Effect.flatMap((exit) => complete(start.event, exit, closing))
                    )
                  ),
                { discard: true }
              )
            )
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
        HashMap.size(s.running) === 0 ? [true, s] : [false, { ...s, idleWaiters: [...s.idleWaiters, waiter] }]
      )
      if (!idle) yield* Deferred.await(waiter)
    })

    const stats = Effect.gen(function*() {
      const s = yield* Ref.get(state)
      const partitions: Array<PartitionStats> = []
      for (const p of HashMap.values(s.partitions)) {
        const key = Partition.key(p.partition)
        const channels: Array<ChannelStats> = []
        let oldest: number | null = null
        for (const lane of HashMap.values(s.lanes)) {
          if (Partition.key(lane.partition) !== key || lane.pending.size === 0) continue
          channels.push({ channelId: lane.channelId, pending: lane.pending.size })
          for (const entry of Fifo.toArray(lane.pending)) {
            oldest = oldest === null ? entry.event.enqueuedAt : Math.min(oldest, entry.event.enqueuedAt)
          }
        }
        let inFlight = 0
        for (const run of HashMap.values(s.running)) if (run.partition === key) inFlight++
        const { capacity } = yield* policy.limits(p.partition)
        partitions.push({
          partition: p.partition,
          key,
          pending: p.pending,
          inFlight,
          capacity,
          paused: p.paused,
          oldestEnqueuedAt: oldest,
          channels: channels.sort((a, b) => a.channelId.localeCompare(b.channelId))
        })
      }
      return {
        partitions: partitions.sort((a, b) => a.key.localeCompare(b.key)),
        inFlight: Array.from(HashMap.values(s.running), (run) => ({
          messageId: run.messageId,
          agentId: run.agentId,
          channelId: run.channelId,
          partition: run.partition,
          startedAt: run.startedAt
        })).sort((a, b) => a.startedAt - b.startedAt || a.messageId.localeCompare(b.messageId)),
        rejected: s.rejected,
        globalPaused: s.globalPaused,
        dispatchStopped: s.stopped,
        dedup: { size: s.dedup.order.size, maxSize: dedupLimits.maxSize }
      } satisfies QueueStats
    })

    return EventQueue.of({
      offer,
      restore,
      consume,
      pause: (target) => setPaused(target, true),
      resume: (target) => Effect.zipRight(setPaused(target, false), wake),
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
  static readonly Default = EventQueue.layer()
}

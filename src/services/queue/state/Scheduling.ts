/**
 * The scheduling transitions: deciding which channel heads start now (spacing, retry delays,
 * pauses, one run per agent, the global cap, oldest first), settling a run that ended, releasing
 * held channels, forgetting idle channels now and then, and making every waiting channel fresh
 * again when the limits changed. Pure functions on the queue's `State`, driven by the time and
 * the spacing the service reads for them.
 */
import { type Deferred, HashMap, HashSet, Option, RedBlackTree } from "effect"
import { Partition, type QueuedEvent } from "../../../domain/Event.js"
import { type DispatchIndex, slotDue, slotFresh, slotTimed, unslot } from "./DispatchIndex.js"
import { Fifo } from "./Fifo.js"
import {
  endOverflow,
  type Lane,
  type Note,
  partitionOf,
  type Pending,
  readyAtOf,
  type Running,
  type State,
  withLane,
  withPartition
} from "./QueueState.js"

export interface Decision {
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
export const decide = (
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
      seq: head.seq,
      previousStartAt: lane.lastStartAt,
      releaseEpoch: next.releases
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
        { ...lane, pending: Fifo.pop(lane.pending), inFlight: true, lastStartAt: now, held: false }
      ),
      remaining === 0 && p.reserved === 0 ? endOverflow({ ...p, pending: 0 }, notes) : { ...p, pending: remaining }
    )
  }
  return [{ starts, wakeAt }, next]
}

/** How often lanes that went idle are looked for, to forget them. */
export const sweepIntervalMs = 10_000

/**
 * Forgets the idle channels whose timing has lapsed: they hold no information any more (DM lanes
 * come and go). Done now and then rather than on every decision, which looks at waiting lanes
 * only; `spacing` holds the limits of every partition with an idle lane.
 */
export const sweepIdle = (s: State, now: number, spacing: ReadonlyMap<string, number>): State => {
  let lanes = s.lanes
  for (const [laneKey, lane] of s.lanes) {
    if (lane.inFlight || lane.pending.size > 0) continue
    const gap = spacing.get(Partition.key(lane.partition))
    if (gap !== undefined && readyAtOf(lane, gap) <= now) lanes = HashMap.remove(lanes, laneKey)
  }
  return { ...s, lanes, sweptAt: now }
}

/** How a dispatch ended, from the queue's point of view. */
export type Settlement =
  | { readonly _tag: "Finished" }
  | { readonly _tag: "Requeue"; readonly event: QueuedEvent; readonly notBefore: number }
  /** Back to the front, held until a release (or `fallbackAt`, should no release come). */
  | { readonly _tag: "Hold"; readonly event: QueuedEvent; readonly fallbackAt: number }

/**
 * Frees the channel and the agent; a requeued or held event goes back to the front of its channel.
 * A held event's start does not count toward its channel's spacing (it waits for its release
 * only), and a release that came while it ran means its hold no longer applies: it is due at once.
 */
export const settle = (
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
    const pending = Fifo.pushFront(lane.pending, { event: settlement.event, seq: run.seq })
    const held = settlement._tag === "Hold" && run.releaseEpoch === s.releases
    const back: Lane = settlement._tag === "Requeue"
      ? { ...lane, inFlight: false, pending, notBefore: Math.max(lane.notBefore, settlement.notBefore) }
      : { ...lane, inFlight: false, pending, lastStartAt: run.previousStartAt, held, notBefore: held ? settlement.fallbackAt : 0 }
    next = withPartition(withLane(next, run.laneKey, back), { ...p, pending: p.pending + 1 })
  }
  if (HashMap.size(running) > 0 || next.idleWaiters.length === 0) return [[], next]
  return [next.idleWaiters, { ...next, idleWaiters: [] }]
}

/**
 * Lifts every hold: a held lane is placed again by the next decision, without its fallback. Counts
 * the release, so that a hold settled by a run that started before it does not apply (see `settle`).
 */
export const releaseHeld = (s: State): State => {
  let next: State = { ...s, releases: s.releases + 1 }
  for (const [laneKey, lane] of s.lanes) {
    if (lane.held) next = withLane(next, laneKey, { ...lane, held: false, notBefore: 0 })
  }
  return next
}

/** Every waiting lane back to fresh: the next decision places it with the spacing it reads then. */
export const refreshIndex = (s: State): State => {
  let index = s.index
  for (const [laneKey, slot] of s.index.slots) {
    if (slot._tag !== "Fresh") index = slotFresh(unslot(index, laneKey), laneKey)
  }
  return { ...s, index }
}

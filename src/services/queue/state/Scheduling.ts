/**
 * The scheduling transitions: deciding which channel heads start now (spacing, retry delays,
 * pauses, one run per exclusion key, the per-agent cap `parallel`, the global cap, oldest first),
 * settling a run that ended, releasing held channels, forgetting idle channels now and then, and
 * making every waiting channel fresh again when the limits changed. Pure functions on the queue's
 * `State`, driven by the time and the limits the service reads for them.
 */
import { type Deferred, HashMap, HashSet, Option, RedBlackTree } from "effect"
import { conversationModeOf, Partition, type QueuedEvent } from "../../../domain/Event.js"
import { type AgentDue, compareHeads, type DispatchIndex, slotDue, slotFresh, slotTimed, unslot } from "./DispatchIndex.js"
import { Fifo } from "./Fifo.js"
import {
  agentRunsOf,
  endOverflow,
  exclusionKeyOf,
  type Lane,
  type Note,
  partitionOf,
  type Pending,
  readyAtOf,
  type Running,
  sharedLaneOf,
  type State,
  withLane,
  withPartition
} from "./QueueState.js"

/** What the service read of a partition's limits for a decision (times in milliseconds). */
export interface ScheduleLimits {
  /** Minimum time between two starts in one channel. */
  readonly spacing: number
  /** The per-agent cap for a start in this partition. */
  readonly parallel: number
}

export interface Decision {
  readonly starts: ReadonlyArray<Running & { readonly event: QueuedEvent }>
  /** The earliest time a waiting channel becomes ready; null when only a wake-up can help. */
  readonly wakeAt: number | null
}

const nothingToStart: Decision = { starts: [], wakeAt: null }

/**
 * Places the fresh lanes whose partition's limits are known, and moves the timed lanes whose time
 * has come to the due ones. A fresh lane of a partition whose limits were not read stays fresh.
 */
const placeWaiting = (s: State, now: number, limits: ReadonlyMap<string, ScheduleLimits>): DispatchIndex => {
  let index = s.index
  const place = (laneKey: string, readyAt: number) => {
    const lane = Option.getOrUndefined(HashMap.get(s.lanes, laneKey))
    const head = lane === undefined ? undefined : Fifo.peek(lane.pending)
    if (lane === undefined || head === undefined) return
    index = readyAt > now
      ? slotTimed(index, laneKey, readyAt)
      : slotDue(index, laneKey, Partition.key(lane.partition), head)
  }
  for (const laneKey of s.index.fresh) {
    const lane = Option.getOrUndefined(HashMap.get(s.lanes, laneKey))
    const gap = lane === undefined ? undefined : limits.get(Partition.key(lane.partition))?.spacing
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

/** Keeps each read partition's per-agent cap in the state: due lanes are started by it later. */
const cacheParallel = (s: State, limits: ReadonlyMap<string, ScheduleLimits>): State => {
  let partitions = s.partitions
  for (const [key, read] of limits) {
    const p = Option.getOrUndefined(HashMap.get(partitions, key))
    if (p !== undefined && p.parallel !== read.parallel) {
      partitions = HashMap.set(partitions, key, { ...p, parallel: read.parallel })
    }
  }
  return partitions === s.partitions ? s : { ...s, partitions }
}

/** A due lane whose head may start now, as far as its own lane and partition go. */
interface Candidate {
  readonly laneKey: string
  readonly lane: Lane
  readonly head: Pending
  readonly exclusionKey: string
  /** Its partition's per-agent cap. */
  readonly parallel: number
}

/** The lane's head, unless the lane is gone or its partition paused. */
const candidateOf = (s: State, laneKey: string): Candidate | undefined => {
  const lane = Option.getOrUndefined(HashMap.get(s.lanes, laneKey))
  const head = lane === undefined ? undefined : Fifo.peek(lane.pending)
  if (lane === undefined || head === undefined) return undefined
  const p = Option.getOrUndefined(HashMap.get(s.partitions, Partition.key(lane.partition)))
  if (p?.paused === true) return undefined
  return { laneKey, lane, head, exclusionKey: exclusionKeyOf(head.event, laneKey), parallel: p?.parallel ?? 1 }
}

const byAge = (a: Candidate, b: Candidate): number => compareHeads(a.head, b.head)

/**
 * The heads of one agent that may start now, oldest first, at most `room`: each under its own
 * exclusion key, and while the agent's runs stay under the cap of the head's partition. Its
 * shared-mode lanes share one key, so only the oldest of them is looked at, and none while one
 * runs. Lanes of paused partitions (and of partitions whose cap is reached, when another
 * partition's is higher) are passed over.
 */
const startableOf = (s: State, agentId: string, due: AgentDue, room: number): Array<Candidate> => {
  const running = agentRunsOf(s, agentId)
  const found: Array<Candidate> = []
  if (!HashSet.has(s.busyLanes, sharedLaneOf(agentId))) {
    for (const laneKey of RedBlackTree.values(due.shared)) {
      const candidate = candidateOf(s, laneKey)
      if (candidate === undefined || running >= candidate.parallel) continue
      found.push(candidate)
      break
    }
  }
  let channels = 0
  for (const laneKey of RedBlackTree.values(due.channel)) {
    if (channels >= room) break
    const candidate = candidateOf(s, laneKey)
    if (candidate === undefined || HashSet.has(s.busyLanes, candidate.exclusionKey)) continue
    if (running + channels >= candidate.parallel) continue
    found.push(candidate)
    channels++
  }
  // The shared head may be older than some channel heads: the cap goes to the oldest.
  const chosen: Array<Candidate> = []
  for (const candidate of found.sort(byAge)) {
    if (chosen.length >= room) break
    if (running + chosen.length < candidate.parallel) chosen.push(candidate)
  }
  return chosen
}

/**
 * Starts every event that may start now: the channel's head, when the channel is idle and its
 * spacing (and any retry delay) has passed, its partition is not paused, its exclusion key is free
 * and its agent is under the `parallel` cap; per agent the oldest heads first, then oldest first
 * across agents, up to the global cap. `limits` holds the limits of the partitions of the fresh
 * lanes (see DispatchIndex); their per-agent caps are kept in the state for later decisions.
 */
export const decide = (
  s: State,
  now: number,
  limits: ReadonlyMap<string, ScheduleLimits>,
  concurrency: number,
  notes: Array<Note>
): [Decision, State] => {
  if (s.stopped || s.globalPaused) return [nothingToStart, s]
  let next: State = cacheParallel({ ...s, index: placeWaiting(s, now, limits) }, limits)
  const firstTimed = Option.getOrUndefined(RedBlackTree.first(next.index.timed))
  // A fresh lane left unplaced (its limits were not read) asks for another decision at once.
  const wakeAt = HashSet.size(next.index.fresh) > 0 ? now : firstTimed === undefined ? null : firstTimed[0][0]
  const room = concurrency - HashMap.size(next.running)
  if (room <= 0 || HashMap.size(next.index.due) === 0) return [{ starts: [], wakeAt }, next]

  const ready: Array<Candidate> = []
  for (const [agentId, due] of next.index.due) {
    // No head of the agent may start beyond the highest cap of its due lanes' partitions.
    let cap = 1
    for (const key of HashMap.keys(due.partitions)) {
      cap = Math.max(cap, Option.match(HashMap.get(next.partitions, key), { onNone: () => 1, onSome: (p) => p.parallel }))
    }
    const agentRoom = Math.min(room, cap - agentRunsOf(next, agentId))
    if (agentRoom > 0) ready.push(...startableOf(next, agentId, due, agentRoom))
  }
  if (ready.length === 0) return [{ starts: [], wakeAt }, next]
  ready.sort(byAge)

  const starts: Array<Running & { readonly event: QueuedEvent }> = []
  for (const { exclusionKey, head, lane, laneKey } of ready.slice(0, room)) {
    const event = head.event
    const partitionKey = Partition.key(lane.partition)
    const run: Running = {
      messageId: event.messageId,
      agentId: event.agentId,
      channelId: event.channelId,
      conversationMode: conversationModeOf(event),
      exclusionKey,
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
          busyLanes: HashSet.add(next.busyLanes, exclusionKey),
          agentRuns: HashMap.set(next.agentRuns, event.agentId, agentRunsOf(next, event.agentId) + 1)
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
 * only; `limits` holds the limits of every partition with an idle lane.
 */
export const sweepIdle = (s: State, now: number, limits: ReadonlyMap<string, ScheduleLimits>): State => {
  let lanes = s.lanes
  for (const [laneKey, lane] of s.lanes) {
    if (lane.inFlight || lane.pending.size > 0) continue
    const gap = limits.get(Partition.key(lane.partition))?.spacing
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
 * Frees the channel, the run's exclusion key and its place under its agent's cap; a requeued or
 * held event goes back to the front of its channel. A held event's start does not count toward
 * its channel's spacing (it waits for its release only), and a release that came while it ran
 * means its hold no longer applies: it is due at once.
 */
export const settle = (
  s: State,
  messageId: string,
  settlement: Settlement
): [ReadonlyArray<Deferred.Deferred<void>>, State] => {
  const run = Option.getOrUndefined(HashMap.get(s.running, messageId))
  if (run === undefined) return [[], s]
  const running = HashMap.remove(s.running, messageId)
  const agentRuns = agentRunsOf(s, run.agentId) - 1
  let next: State = {
    ...s,
    running,
    busyLanes: HashSet.remove(s.busyLanes, run.exclusionKey),
    agentRuns: agentRuns > 0 ? HashMap.set(s.agentRuns, run.agentId, agentRuns) : HashMap.remove(s.agentRuns, run.agentId)
  }
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

/** Every waiting lane back to fresh: the next decision places it with the limits it reads then. */
export const refreshIndex = (s: State): State => {
  let index = s.index
  for (const [laneKey, slot] of s.index.slots) {
    if (slot._tag !== "Fresh") index = slotFresh(unslot(index, laneKey), laneKey)
  }
  return { ...s, index }
}

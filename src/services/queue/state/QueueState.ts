/**
 * The queue's state: one immutable value holding every channel's FIFO (a lane), the partitions'
 * counters, the runs in flight, the dedup window and the dispatch index, with the small pure
 * helpers that keep its parts in step (a lane stored is a lane indexed). The transitions on it
 * are in ./Intake.ts (offer, restore, clear) and ./Scheduling.ts (decide, settle, sweep); the
 * service (../EventQueue.ts) applies them with `Ref.modify` and does the effects around them.
 * No Effect service here, so the rules can be read and tested as plain functions.
 */
import { type Deferred, HashMap, HashSet, Option } from "effect"
import { type ConversationMode, conversationModeOf, Partition, type QueuedEvent } from "../../../domain/Event.js"
import { type DedupWindow, emptyDedup } from "./DedupWindow.js"
import { type DispatchIndex, emptyIndex, slotFresh, unslot } from "./DispatchIndex.js"
import { Fifo } from "./Fifo.js"

// --- state -----------------------------------------------------------------------

export interface Pending {
  readonly event: QueuedEvent
  /** Arrival order: breaks ties between equal enqueuedAt. */
  readonly seq: number
}

/** One channel's FIFO and its timing. */
export interface Lane {
  readonly partition: Partition
  readonly channelId: string
  readonly pending: Fifo<Pending>
  readonly inFlight: boolean
  readonly lastStartAt: number | null
  /** Set by a Retry or Held outcome: no start before this time. */
  readonly notBefore: number
  /** Its head was held (a Held outcome): `releaseHeld` lifts `notBefore`. */
  readonly held: boolean
}

export interface PartitionState {
  readonly partition: Partition
  readonly pending: number
  /** Admitted, waiting for their journal append. They count against capacity. */
  readonly reserved: number
  readonly paused: boolean
  /** Events rejected in the current overflow episode; null outside one. */
  readonly overflow: number | null
  /**
   * The per-agent cap for a start in this partition, as last read from the policy: read with the
   * spacing whenever one of its lanes is placed (every lane is, before it can be due), so 1 until then.
   */
  readonly parallel: number
}

/** A run in flight: what `stats` reports of it, and where its event goes back on a retry. */
export interface Running {
  readonly messageId: string
  readonly agentId: string
  readonly channelId: string
  readonly conversationMode: ConversationMode
  /** What it holds while it runs (see `exclusionKeyOf`); `settle` frees it. */
  readonly exclusionKey: string
  /** The partition's key. */
  readonly partition: string
  readonly startedAt: number
  readonly laneKey: string
  readonly seq: number
  /** The lane's last start before this one: a held event's start did not count (see `settle`). */
  readonly previousStartAt: number | null
  /** `State.releases` when it started: a release since then lifts a hold it ends with. */
  readonly releaseEpoch: number
}

export interface State {
  readonly lanes: HashMap.HashMap<string, Lane>
  /** Where each waiting lane stands; kept in step with `lanes` by `withLane`. */
  readonly index: DispatchIndex
  /** When idle lanes were last swept (see `sweepIdle`). */
  readonly sweptAt: number
  readonly partitions: HashMap.HashMap<string, PartitionState>
  readonly running: HashMap.HashMap<string, Running>
  /** The exclusion keys of the runs in flight: one run per key. */
  readonly busyLanes: HashSet.HashSet<string>
  /** Runs in flight per agent (agents with none are absent): the `parallel` cap applies to it. */
  readonly agentRuns: HashMap.HashMap<string, number>
  /** Ids reserved, pending or in flight: a duplicate of these is refused whatever the window says. */
  readonly live: HashSet.HashSet<string>
  readonly dedup: DedupWindow
  readonly seq: number
  readonly rejected: { readonly full: number; readonly duplicate: number }
  readonly globalPaused: boolean
  readonly stopped: boolean
  /** How many times held lanes were released (see `releaseHeld`). */
  readonly releases: number
  readonly idleWaiters: ReadonlyArray<Deferred.Deferred<void>>
}

export const initialState: State = {
  lanes: HashMap.empty(),
  index: emptyIndex,
  sweptAt: 0,
  partitions: HashMap.empty(),
  running: HashMap.empty(),
  busyLanes: HashSet.empty(),
  agentRuns: HashMap.empty(),
  live: HashSet.empty(),
  dedup: emptyDedup,
  seq: 0,
  rejected: { full: 0, duplicate: 0 },
  globalPaused: false,
  stopped: false,
  releases: 0,
  idleWaiters: []
}

export const laneKeyOf = (partitionKey: string, channelId: string) => `${partitionKey}/${channelId}`

/**
 * What a run excludes while in flight: in `channel` mode its channel's lane (its own conversation,
 * already one run at a time), in `shared` mode the agent (`shared:<agentId>`: its default
 * conversation, so shared-mode runs of one agent never overlap, whatever their channel or guild).
 * Lane keys start with a partition key ("guild:" or "dm"), so the two kinds never collide.
 */
export const exclusionKeyOf = (event: Pick<QueuedEvent, "agentId" | "conversationMode">, laneKey: string): string =>
  conversationModeOf(event) === "channel" ? laneKey : sharedLaneOf(event.agentId)

/** The exclusion key of an agent's default conversation. */
export const sharedLaneOf = (agentId: string): string => `shared:${agentId}`

/** Runs in flight of `agentId`. */
export const agentRunsOf = (s: State, agentId: string): number => Option.getOrElse(HashMap.get(s.agentRuns, agentId), () => 0)

const isWaiting = (lane: Lane): boolean => !lane.inFlight && lane.pending.size > 0

/** The lane's earliest next start: its channel's spacing after the last start, and any retry delay. */
export const readyAtOf = (lane: Lane, gap: number): number =>
  Math.max(lane.lastStartAt === null ? 0 : lane.lastStartAt + gap, lane.notBefore)

/** Stores a lane, keeping the dispatch index in step with it. */
export const withLane = (s: State, key: string, lane: Lane): State => {
  const old = Option.getOrUndefined(HashMap.get(s.lanes, key))
  const lanes = HashMap.set(s.lanes, key, lane)
  // Still waiting with the same head and timing (an event joined the back): its place holds.
  if (old !== undefined && isWaiting(old) && isWaiting(lane) && sameStart(old, lane)) return { ...s, lanes }
  const unslotted = unslot(s.index, key)
  return { ...s, lanes, index: isWaiting(lane) ? slotFresh(unslotted, key) : unslotted }
}

const sameStart = (a: Lane, b: Lane): boolean =>
  Fifo.peek(a.pending) === Fifo.peek(b.pending) && a.lastStartAt === b.lastStartAt && a.notBefore === b.notBefore

export const partitionOf = (s: State, partition: Partition): PartitionState =>
  Option.getOrElse(HashMap.get(s.partitions, Partition.key(partition)), () => ({
    partition,
    pending: 0,
    reserved: 0,
    paused: false,
    overflow: null,
    parallel: 1
  }))

export const withPartition = (s: State, p: PartitionState): State => ({
  ...s,
  partitions: HashMap.set(s.partitions, Partition.key(p.partition), p)
})

/** Log lines a transition asks for; emitted after the Ref update. */
export type Note =
  | { readonly _tag: "OverflowStarted"; readonly partition: string; readonly capacity: number }
  | { readonly _tag: "OverflowEnded"; readonly partition: string; readonly rejected: number }
  | { readonly _tag: "RestoreSkipped"; readonly messageId: string }

/** An overflow episode ends when an event is accepted again or the partition has drained. */
export const endOverflow = (p: PartitionState, notes: Array<Note>): PartitionState => {
  if (p.overflow === null) return p
  notes.push({ _tag: "OverflowEnded", partition: Partition.key(p.partition), rejected: p.overflow })
  return { ...p, overflow: null }
}

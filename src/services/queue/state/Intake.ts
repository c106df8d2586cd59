/**
 * The intake transitions: admitting an offered event (dedup, capacity), accepting it once the
 * journal holds it or undoing the admission when the journal refused it, restoring the events
 * replayed after a restart, and clearing a partition. Pure functions on the queue's `State`;
 * the log lines they ask for come back as `Note`s, emitted by the service after the update.
 */
import { HashMap, HashSet, Option } from "effect"
import { DuplicateEvent, QueueFull } from "../../../domain/Errors.js"
import { Partition, type QueuedEvent } from "../../../domain/Event.js"
import { type DedupLimits, evictDedup, registerDedup, unregisterDedup } from "./DedupWindow.js"
import { Fifo } from "./Fifo.js"
import {
  endOverflow,
  type Lane,
  laneKeyOf,
  type Note,
  partitionOf,
  type Pending,
  type State,
  withLane,
  withPartition
} from "./QueueState.js"

export type Admission =
  | { readonly _tag: "Admitted"; readonly seq: number }
  | { readonly _tag: "Rejected"; readonly error: QueueFull | DuplicateEvent }

export const admit = (
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
export const unadmit = (s: State, event: QueuedEvent, partition: Partition, seq: number): State => {
  const p = partitionOf(s, partition)
  return withPartition(
    { ...s, live: HashSet.remove(s.live, event.messageId), dedup: unregisterDedup(s.dedup, event.messageId, seq) },
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
    notBefore: 0,
    held: false
  }))
  return withLane(s, key, { ...lane, pending: Fifo.push(lane.pending, entry) })
}

export const accept = (s: State, event: QueuedEvent, partition: Partition, seq: number, notes: Array<Note>): State => {
  const p = partitionOf(s, partition)
  const next = withPartition(s, endOverflow({ ...p, reserved: p.reserved - 1, pending: p.pending + 1 }, notes))
  return enqueue(next, { event, seq }, partition)
}

export const restoreAll = (
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

export const clearPartition = (s: State, partition: Partition, notes: Array<Note>): [ReadonlyArray<QueuedEvent>, State] => {
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

/**
 * The dispatch index: where each waiting lane stands, so that a queue decision does not scan
 * every channel. Pure and immutable; the queue state keeps it in step with its lanes. Its own
 * module because it knows a lane only by its key, its partition's key and its head's agent, mode,
 * age and arrival order, not how lanes are stored or scheduled.
 */
import { HashMap, HashSet, Option, Order, RedBlackTree } from "effect"
import { conversationModeOf, type QueuedEvent } from "../../../domain/Event.js"

/**
 * The waiting lanes (pending events, none in flight), arranged so that a decision touches only
 * the lanes it can start and the next one to come due, not every channel with a backlog:
 * - fresh: placed by the next decision, which knows their partition's spacing;
 * - timed: their spacing (or retry delay) has not passed yet, by the time it will;
 * - due: their time has come, by the agent of their head and its conversation mode, oldest head
 *   first. The shared-mode lanes of an agent exclude each other (one run at a time in its default
 *   conversation), so a decision looks at the oldest of them only, and not at all while one runs;
 *   of its channel-mode lanes it looks at as many of the oldest as the agent's cap leaves room for.
 *   The partitions of an agent's due lanes are counted, so that its cap (the highest of theirs) is
 *   known without looking at any lane, nor at every partition.
 * A changed spacing is applied by `limitsChanged`, which makes every waiting lane fresh again.
 */
export interface DispatchIndex {
  readonly slots: HashMap.HashMap<string, Slot>
  readonly fresh: HashSet.HashSet<string>
  readonly timed: RedBlackTree.RedBlackTree<TimedKey, string>
  readonly due: HashMap.HashMap<string, AgentDue>
}

/** One agent's due lanes, oldest head first, by the conversation mode of their head. */
export interface AgentDue {
  readonly shared: RedBlackTree.RedBlackTree<HeadKey, string>
  readonly channel: RedBlackTree.RedBlackTree<HeadKey, string>
  /** How many of them are in each partition, by partition key (both modes). */
  readonly partitions: HashMap.HashMap<string, number>
}

type Slot =
  | { readonly _tag: "Fresh" }
  | { readonly _tag: "Timed"; readonly key: TimedKey }
  | {
    readonly _tag: "Due"
    readonly agentId: string
    readonly partition: string
    readonly shared: boolean
    readonly key: HeadKey
  }

/** [due at, lane key]: unique per lane. */
type TimedKey = readonly [number, string]
/** [head's enqueuedAt, head's seq]: unique per pending event, ordered like the queue's fairness. */
type HeadKey = readonly [number, number]

/** What the index reads of a due lane's head: its agent, its mode, its age and its arrival order. */
export interface Head {
  readonly event: Pick<QueuedEvent, "agentId" | "enqueuedAt" | "conversationMode">
  readonly seq: number
}

const timedOrder: Order.Order<TimedKey> = Order.tuple(Order.number, Order.string)
const headOrder: Order.Order<HeadKey> = Order.tuple(Order.number, Order.number)

const freshSlot: Slot = { _tag: "Fresh" }

const noneDue: AgentDue = {
  shared: RedBlackTree.empty(headOrder),
  channel: RedBlackTree.empty(headOrder),
  partitions: HashMap.empty()
}

const countIn = (counts: HashMap.HashMap<string, number>, key: string, delta: number): HashMap.HashMap<string, number> => {
  const n = Option.getOrElse(HashMap.get(counts, key), () => 0) + delta
  return n > 0 ? HashMap.set(counts, key, n) : HashMap.remove(counts, key)
}

export const emptyIndex: DispatchIndex = {
  slots: HashMap.empty(),
  fresh: HashSet.empty(),
  timed: RedBlackTree.empty(timedOrder),
  due: HashMap.empty()
}

export const unslot = (index: DispatchIndex, laneKey: string): DispatchIndex => {
  const slot = Option.getOrUndefined(HashMap.get(index.slots, laneKey))
  if (slot === undefined) return index
  const slots = HashMap.remove(index.slots, laneKey)
  switch (slot._tag) {
    case "Fresh":
      return { ...index, slots, fresh: HashSet.remove(index.fresh, laneKey) }
    case "Timed":
      return { ...index, slots, timed: RedBlackTree.removeFirst(index.timed, slot.key) }
    case "Due": {
      const lanes = Option.getOrUndefined(HashMap.get(index.due, slot.agentId))
      if (lanes === undefined) return { ...index, slots }
      const partitions = countIn(lanes.partitions, slot.partition, -1)
      const rest: AgentDue = slot.shared
        ? { ...lanes, partitions, shared: RedBlackTree.removeFirst(lanes.shared, slot.key) }
        : { ...lanes, partitions, channel: RedBlackTree.removeFirst(lanes.channel, slot.key) }
      return {
        ...index,
        slots,
        due: HashMap.size(partitions) === 0 ? HashMap.remove(index.due, slot.agentId) : HashMap.set(index.due, slot.agentId, rest)
      }
    }
  }
}

export const slotFresh = (index: DispatchIndex, laneKey: string): DispatchIndex => ({
  ...index,
  slots: HashMap.set(index.slots, laneKey, freshSlot),
  fresh: HashSet.add(index.fresh, laneKey)
})

export const slotTimed = (index: DispatchIndex, laneKey: string, dueAt: number): DispatchIndex => {
  const key: TimedKey = [dueAt, laneKey]
  return {
    ...index,
    slots: HashMap.set(index.slots, laneKey, { _tag: "Timed", key }),
    timed: RedBlackTree.insert(index.timed, key, laneKey)
  }
}

export const slotDue = (index: DispatchIndex, laneKey: string, partition: string, head: Head): DispatchIndex => {
  const agentId = head.event.agentId
  const shared = conversationModeOf(head.event) === "shared"
  const key: HeadKey = [head.event.enqueuedAt, head.seq]
  const lanes = Option.getOrElse(HashMap.get(index.due, agentId), () => noneDue)
  const partitions = countIn(lanes.partitions, partition, 1)
  return {
    ...index,
    slots: HashMap.set(index.slots, laneKey, { _tag: "Due", agentId, partition, shared, key }),
    due: HashMap.set(
      index.due,
      agentId,
      shared
        ? { ...lanes, partitions, shared: RedBlackTree.insert(lanes.shared, key, laneKey) }
        : { ...lanes, partitions, channel: RedBlackTree.insert(lanes.channel, key, laneKey) }
    )
  }
}

/** Orders two due heads like the index does: oldest first, ties broken by arrival. */
export const compareHeads = (a: Head, b: Head): number => a.event.enqueuedAt - b.event.enqueuedAt || a.seq - b.seq

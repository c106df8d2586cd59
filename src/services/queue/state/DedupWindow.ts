/**
 * The dedup window: the message ids the queue accepted recently, so that a redelivered message
 * is refused. Bounded both ways, the last N ids or those seen within an age, whichever is
 * smaller. Pure and immutable, like the rest of the queue's state; its own module because its
 * eviction rule does not depend on how the queue schedules.
 */
import { HashMap, Option } from "effect"
import { Fifo } from "./Fifo.js"

export interface DedupEntry {
  readonly id: string
  /** Tells this registration from a later one of the same id. */
  readonly seq: number
  readonly at: number
}

/** Ids in arrival order (for eviction) and by id (for lookup); `seen` never outgrows `order`. */
export interface DedupWindow {
  readonly order: Fifo<DedupEntry>
  readonly seen: HashMap.HashMap<string, number>
}

export interface DedupLimits {
  readonly maxSize: number
  readonly maxAgeMs: number
}

export const emptyDedup: DedupWindow = { order: Fifo.empty(), seen: HashMap.empty() }

export const evictDedup = (w: DedupWindow, now: number, limits: DedupLimits): DedupWindow => {
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

export const registerDedup = (w: DedupWindow, id: string, seq: number, now: number, limits: DedupLimits): DedupWindow =>
  evictDedup({ order: Fifo.push(w.order, { id, seq, at: now }), seen: HashMap.set(w.seen, id, seq) }, now, limits)

/** Forgets the registration `seq` of `id` (an admission undone); a later registration stays. */
export const unregisterDedup = (w: DedupWindow, id: string, seq: number): DedupWindow =>
  Option.getOrUndefined(HashMap.get(w.seen, id)) === seq ? { ...w, seen: HashMap.remove(w.seen, id) } : w

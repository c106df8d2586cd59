/**
 * A persistent FIFO, the building block of the queue's immutable state: each channel's pending
 * events and the dedup window's arrival order are kept in one. Its own module because it knows
 * nothing of events or queues.
 */
import { List } from "effect"

/**
 * Two cons lists (front, reversed back): O(1) amortised push, pushFront and pop without mutation,
 * so the state can stay immutable and cheap to copy. Invariant: front is empty only if back is.
 */
export interface Fifo<A> {
  readonly front: List.List<A>
  readonly back: List.List<A>
  readonly size: number
}

export const Fifo = {
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

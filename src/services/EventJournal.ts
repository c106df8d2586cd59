/**
 * The queue's write-ahead record of pending events. The EventQueue appends an event before it
 * accepts it, updates it when a dispatch is retried and removes it when the event is done or
 * cleared, so that a restart can replay what was pending. The durable SQLite store implements this
 * port; `noop` and `memory` serve tests and runs without persistence.
 */
import { Context, Effect, HashMap, Layer, Ref } from "effect"
import type { StorageError } from "../domain/Errors.js"
import type { QueuedEvent } from "../domain/Event.js"

export interface EventJournalService {
  /** Records a newly accepted event. A failure means the event is not accepted. */
  readonly append: (event: QueuedEvent) => Effect.Effect<void, StorageError>
  /** Forgets an event: it was handed to its agent, or cleared. */
  readonly remove: (messageId: string) => Effect.Effect<void, StorageError>
  /** Rewrites an event kept for another dispatch (its attempts changed). */
  readonly update: (event: QueuedEvent) => Effect.Effect<void, StorageError>
}

export class EventJournal extends Context.Tag("aurora/EventJournal")<EventJournal, EventJournalService>() {
  /** Keeps nothing: pending events do not survive a restart. */
  static readonly noop: Layer.Layer<EventJournal> = Layer.succeed(EventJournal, {
    append: () => Effect.void,
    remove: () => Effect.void,
    update: () => Effect.void
  })

  /** Keeps pending events in memory (for tests and for inspecting what would be persisted). */
  static readonly memory: Layer.Layer<EventJournal> = Layer.effect(
    EventJournal,
    Effect.map(
      Effect.suspend(() => makeMemoryJournal),
      (memory) => memory.journal
    )
  )
}

export interface MemoryJournal {
  readonly journal: EventJournalService
  /** The recorded events, in the order they were first appended. */
  readonly entries: Effect.Effect<ReadonlyArray<QueuedEvent>>
}

interface Entry {
  readonly order: number
  readonly event: QueuedEvent
}

interface MemoryState {
  readonly next: number
  readonly entries: HashMap.HashMap<string, Entry>
}

export const makeMemoryJournal: Effect.Effect<MemoryJournal> = Effect.map(
  Ref.make<MemoryState>({ next: 0, entries: HashMap.empty() }),
  (state): MemoryJournal => ({
    journal: {
      append: (event) =>
        Ref.update(state, (s) => ({
          next: s.next + 1,
          entries: HashMap.set(s.entries, event.messageId, { order: s.next, event })
        })),
      remove: (messageId) => Ref.update(state, (s) => ({ ...s, entries: HashMap.remove(s.entries, messageId) })),
      // An update keeps the event's original place, as a row update in a table would.
      update: (event) =>
        Ref.update(state, (s) => ({
          ...s,
          entries: HashMap.modify(s.entries, event.messageId, (entry) => ({ ...entry, event }))
        }))
    },
    entries: Effect.map(Ref.get(state), (s) =>
      Array.from(HashMap.values(s.entries))
        .sort((a, b) => a.order - b.order)
        .map((entry) => entry.event)
    )
  })
)

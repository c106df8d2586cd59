/**
 * The queue's write-ahead record of pending events, and of the progress of their runs.
 *
 * The EventQueue appends an event before it accepts it, updates it when a dispatch is retried and
 * removes it when the event is done or cleared. The dispatcher records a run's progress (started,
 * run id, side effect) as it happens (a run continued after a restart at an open stop records its
 * side effects on the same entry, see programs/ApprovalResume.ts), so that after a crash the
 * recovery can tell a run that may be re-sent from one whose agent had already acted; and, before
 * it posts a silent run's text itself, that it is about to (the fallback), so that a restart never
 * posts it again. `load` gives everything back at start-up.
 *
 * Every write returns only once it is recorded (in the SQLite store: committed), so a write that
 * returned survives a crash; that is what makes `append` a write-ahead record. How a store gets
 * there (one commit per write, or writes grouped into one commit) is its own business.
 *
 * The durable SQLite store (`layerSql`, storage/SqlEventJournal.ts) implements this port;
 * `layerNoop` and `layerMemory` serve tests and runs without persistence.
 */
import type { SqlClient } from "@effect/sql"
import { Context, Effect, HashMap, Layer, Ref } from "effect"
import type { StorageError } from "../../domain/Errors.js"
import type { QueuedEvent } from "../../domain/Event.js"
import { type GroupCommitOptions, makeSqlEventJournal } from "../storage/SqlEventJournal.js"

/** What a run of a journalled event had done when it was last recorded. */
export interface RunProgress {
  /** Epoch ms when the dispatch started. */
  readonly startedAt: number
  /** The Letta run id, once the stream showed it. */
  readonly runId: string | null
  /** The Letta conversation the run went to, recorded with its run id; absent for the agent's default conversation. */
  readonly conversationId?: string
  /** A side-effecting tool call was streamed (see `isSideEffectingTool`). */
  readonly sideEffect: boolean
  /** Epoch ms when Aurora recorded that it would post the silent run's text itself; absent before. */
  readonly fallbackAt?: number
}

export interface JournalEntry {
  readonly event: QueuedEvent
  /** null when no dispatch of the event is under way (it waits in the queue). */
  readonly run: RunProgress | null
}

export interface EventJournalService {
  /** Records a newly accepted event. A failure means the event is not accepted. */
  readonly append: (event: QueuedEvent) => Effect.Effect<void, StorageError>
  /** Forgets an event: it was handed to its agent, dead-lettered or cleared. Unknown ids are ignored. */
  readonly remove: (messageId: string) => Effect.Effect<void, StorageError>
  /**
   * Rewrites an event kept for another dispatch (its attempts changed, or it was replayed). The
   * event keeps its place in the journal's order and its run progress is cleared: it waits again.
   */
  readonly update: (event: QueuedEvent) => Effect.Effect<void, StorageError>
  /** A dispatch of the event started (clears any run id and side effect of an earlier attempt). */
  readonly runStarted: (messageId: string, at: number) => Effect.Effect<void, StorageError>
  /**
   * The run's id, as soon as the stream showed it, with the conversation it runs in (channel
   * mode), so that a recovery cancels it there. Without a conversation id, a recorded one stays.
   */
  readonly runIdSeen: (messageId: string, runId: string, conversationId?: string) => Effect.Effect<void, StorageError>
  /** The agent made a side-effecting tool call: this run must never be re-sent. */
  readonly sideEffectSeen: (messageId: string) => Effect.Effect<void, StorageError>
  /**
   * The run ended silently and Aurora is about to post its text itself (written before the first
   * post): the event is finished, and a restart must neither post it again nor re-send it.
   */
  readonly fallbackRecorded: (messageId: string, at: number) => Effect.Effect<void, StorageError>
  /** Every journalled event, in the order first appended. */
  readonly load: Effect.Effect<ReadonlyArray<JournalEntry>, StorageError>
}

export class EventJournal extends Context.Tag("aurora/EventJournal")<EventJournal, EventJournalService>() {
  /** Keeps nothing: pending events do not survive a restart. */
  /** In the SQLite database (the `pending_events` table). */
  static readonly layerSql: Layer.Layer<EventJournal, never, SqlClient.SqlClient> = Layer.scoped(
    EventJournal,
    makeSqlEventJournal()
  )

  /** The SQLite journal with its group commit tuned (tests: a writer that is always busy). */
  static readonly layerSqlWith = (options: GroupCommitOptions): Layer.Layer<EventJournal, never, SqlClient.SqlClient> =>
    Layer.scoped(EventJournal, makeSqlEventJournal(options))

  static readonly layerNoop: Layer.Layer<EventJournal> = Layer.succeed(EventJournal, {
    append: () => Effect.void,
    remove: () => Effect.void,
    update: () => Effect.void,
    runStarted: () => Effect.void,
    runIdSeen: () => Effect.void,
    sideEffectSeen: () => Effect.void,
    fallbackRecorded: () => Effect.void,
    load: Effect.succeed([])
  })

  /** Keeps pending events in memory (for tests and for inspecting what would be persisted). */
  static readonly layerMemory: Layer.Layer<EventJournal> = Layer.effect(
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
  readonly run: RunProgress | null
}

interface MemoryState {
  readonly next: number
  readonly entries: HashMap.HashMap<string, Entry>
}

export const makeMemoryJournal: Effect.Effect<MemoryJournal> = Effect.map(
  Ref.make<MemoryState>({ next: 0, entries: HashMap.empty() }),
  (state): MemoryJournal => {
    const modify = (messageId: string, f: (entry: Entry) => Entry) =>
      Ref.update(state, (s) => ({ ...s, entries: HashMap.modify(s.entries, messageId, f) }))
    const ordered = Effect.map(Ref.get(state), (s) => Array.from(HashMap.values(s.entries)).sort((a, b) => a.order - b.order))
    return {
      journal: {
        append: (event) =>
          Ref.update(state, (s) => ({
            next: s.next + 1,
            entries: HashMap.set(s.entries, event.messageId, { order: s.next, event, run: null })
          })),
        remove: (messageId) => Ref.update(state, (s) => ({ ...s, entries: HashMap.remove(s.entries, messageId) })),
        // An update keeps the event's original place, as a row update in a table would.
        update: (event) => modify(event.messageId, (entry) => ({ ...entry, event, run: null })),
        runStarted: (messageId, at) =>
          modify(messageId, (entry) => ({ ...entry, run: { startedAt: at, runId: null, sideEffect: false } })),
        runIdSeen: (messageId, runId, conversationId) =>
          modify(messageId, (entry) =>
            entry.run === null
              ? entry
              : { ...entry, run: { ...entry.run, runId, ...(conversationId === undefined ? {} : { conversationId }) } }),
        sideEffectSeen: (messageId) =>
          modify(messageId, (entry) => entry.run === null ? entry : { ...entry, run: { ...entry.run, sideEffect: true } }),
        fallbackRecorded: (messageId, at) =>
          modify(messageId, (entry) => entry.run === null ? entry : { ...entry, run: { ...entry.run, fallbackAt: at } }),
        load: Effect.map(ordered, (entries) => entries.map(({ event, run }) => ({ event, run })))
      },
      entries: Effect.map(ordered, (entries) => entries.map((entry) => entry.event))
    }
  }
)

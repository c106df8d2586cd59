/**
 * `/aurora queue failed [scope]` and `/aurora queue retry [message_id] [scope]`: the dead letters
 * of a partition (this guild, or the DM queue for owners), and putting them back in the queue.
 *
 * A retry sends a fresh copy of the event (no attempts, a new enqueue time so it does not expire,
 * no interrupted run to cancel) to the agent the partition uses *now*: a dead letter's agent may be
 * stale, and a disabled guild or DMs turned off have no agent to send it to. The dead letter is
 * removed only after the queue accepted (and journalled) the copy, so a failed retry keeps it.
 */
import { Clock, Effect, Option } from "effect"
import type { DeadLetter } from "../domain/DeadLetter.js"
import type { StorageError } from "../domain/Errors.js"
import { type ConversationMode, Partition, type QueuedEvent } from "../domain/Event.js"
import { parseMessageRef } from "../domain/Snowflake.js"
import { DeadLetters } from "../services/queue/DeadLetters.js"
import { EventQueue } from "../services/queue/EventQueue.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"
import { requireAccess } from "./Access.js"
import { deadLetterLines } from "./DeadLetterLines.js"
import { code, plural } from "./Format.js"
import { Colors, CommandRejected, type Invocation, Reply } from "./Invocation.js"
import { guildOf, optionalString, scopeOf } from "./Options.js"

/** Dead letters shown before "… and N more": two lines each keeps the embed well under 4096 characters. */
export const maxListedDeadLetters = 10

type LetterScope = "guild" | "dm"

const partitionOf = (scope: LetterScope, guildId: string): Partition => scope === "dm" ? Partition.dm : Partition.guild(guildId)

const whereText = (scope: LetterScope): string => (scope === "dm" ? "in the direct-message queue" : "in this server")

const reject = (message: string) => new CommandRejected({ message })

// --- listing ------------------------------------------------------------------------------------

export const queueFailed = (invocation: Invocation) =>
  Effect.gen(function*() {
    const guildId = yield* guildOf(invocation)
    const scope = yield* scopeOf(invocation, "dm")
    if (scope === "dm") yield* requireAccess(invocation, "owner", "/aurora queue failed scope:dm")
    const deadLetters = yield* DeadLetters
    const page = yield* deadLetters.list(partitionOf(scope, guildId), maxListedDeadLetters).pipe(
      Effect.tapError((error) => Effect.logError("could not read the dead letters", error)),
      Effect.mapError(() =>
        reject("❌ Aurora could not read its dead letters (database error). The details are in Aurora's log.")
      )
    )
    if (page.total === 0) return Reply.text(`✅ No dead letters ${whereText(scope)}.`)
    const hidden = page.total - page.letters.length
    const lines = [
      ...page.letters.flatMap(deadLetterLines),
      ...(hidden > 0 ? [`… and ${plural(hidden, "older dead letter")}`] : [])
    ]
    return Reply.embed({
      title: `Dead letters ${whereText(scope)}: ${page.total}`,
      description: lines.join("\n"),
      color: Colors.warning,
      footer: "Newest first. /aurora queue retry message_id:<id> re-queues one; without message_id, all of them."
    })
  })

// --- retrying -----------------------------------------------------------------------------------

/** Where a retried event goes: the partition's agent and conversation mode now. */
export interface RetryTarget {
  readonly agentId: string
  readonly mode: ConversationMode
}

/**
 * What the dead letter is retried as. Built field by field rather than spread, so run state a
 * later version adds to an event (like `interruptedRunId`) never leaks into a fresh attempt. The
 * conversation mode is the partition's current one, as for a new mention.
 */
export const freshEvent = (event: QueuedEvent, { agentId, mode }: RetryTarget, now: number): QueuedEvent => ({
  messageId: event.messageId,
  guildId: event.guildId,
  channelId: event.channelId,
  authorId: event.authorId,
  agentId,
  trigger: event.trigger,
  prompt: event.prompt,
  enqueuedAt: now,
  attempts: 0,
  conversationMode: mode
})

type RetryOutcome =
  | { readonly _tag: "Requeued"; readonly removed: boolean }
  | { readonly _tag: "Full"; readonly capacity: number }
  | { readonly _tag: "Duplicate" }
  | { readonly _tag: "NotSaved" }

/**
 * Forgets the dead letter once its copy is queued. The copy can be dispatched, fail and be
 * dead-lettered again before this runs: that newer record is kept (the removal is conditional,
 * in one statement), so no failure goes unseen. False only when the store could not be written.
 */
const removeRetried = (letter: DeadLetter): Effect.Effect<boolean, never, DeadLetters> =>
  Effect.flatMap(DeadLetters, (deadLetters) => deadLetters.removeUnchanged(letter)).pipe(
    Effect.as(true),
    Effect.catchAll((error: StorageError) =>
      Effect.logError("re-queued, but the dead letter could not be removed", error).pipe(Effect.as(false))
    )
  )

const retryOne = (letter: DeadLetter, target: RetryTarget) =>
  Effect.gen(function*() {
    const queue = yield* EventQueue
    const now = yield* Clock.currentTimeMillis
    return yield* queue.offer(freshEvent(letter.event, target, now), { requeue: true }).pipe(
      Effect.zipRight(removeRetried(letter)),
      Effect.map((removed): RetryOutcome => ({ _tag: "Requeued", removed })),
      Effect.catchTags({
        QueueFull: (full) => Effect.succeed<RetryOutcome>({ _tag: "Full", capacity: full.capacity }),
        DuplicateEvent: () => Effect.succeed<RetryOutcome>({ _tag: "Duplicate" }),
        StorageError: (error) =>
          Effect.logError("could not journal a retried dead letter", error).pipe(Effect.as<RetryOutcome>({ _tag: "NotSaved" }))
      }),
      Effect.annotateLogs({ messageId: letter.event.messageId })
    )
  })

/** The agent the partition's events go to now; none when the guild is not enabled or DMs are off. */
const currentAgent = (scope: LetterScope, guildId: string) =>
  Effect.gen(function*() {
    const store = yield* SettingsStore
    if (scope === "dm") {
      const global = yield* store.global
      const agentId = global.dmAgentId
      if (agentId === null) {
        return yield* reject(
          "❌ Direct messages are off, so there is no agent to send DM dead letters to. `/aurora dm enable` first; nothing was re-queued."
        )
      }
      return { agentId, mode: global.dmConversations } satisfies RetryTarget
    }
    const state = yield* store.guild(guildId)
    if (!state.enabled || state.agentId === null) {
      return yield* reject(
        "❌ Aurora is not enabled in this server, so there is no agent to send dead letters to. `/aurora enable` first; nothing was re-queued."
      )
    }
    return { agentId: state.agentId, mode: state.settings.conversations } satisfies RetryTarget
  })

/**
 * The optional `message_id`: a message id, or a message link (its message part: the scope, not
 * the link, says which partition); null means "all".
 */
const deadLetterIdOf = (invocation: Invocation): Effect.Effect<string | null, CommandRejected> =>
  Effect.flatMap(optionalString(invocation, "message_id"), (value) => {
    if (value === null) return Effect.succeed(null)
    return Option.match(parseMessageRef(value), {
      onNone: () =>
        Effect.fail(
          reject("❌ `message_id` must be a message id (digits) or a message link, as `/aurora queue failed` lists them.")
        ),
      onSome: (ref) => Effect.succeed(ref.messageId)
    })
  })

const oneOutcomeText = (outcome: RetryOutcome, messageId: string, agentId: string, scope: LetterScope): string => {
  const id = code(messageId, 40)
  switch (outcome._tag) {
    case "Requeued":
      return outcome.removed
        ? `🔁 Re-queued message ${id} for agent ${code(agentId)}; its dead letter was removed.`
        : `🔁 Re-queued message ${id} for agent ${code(agentId)}, but its dead letter could not be removed (database error): ` +
          "it is still listed, do not retry it again."
    case "Full":
      return `❌ The queue ${whereText(scope)} is full (${plural(outcome.capacity, "pending event")}): message ${id} was not ` +
        "re-queued and its dead letter was kept. Retry once the queue has drained."
    case "Duplicate":
      return `ℹ️ Message ${id} is already queued or running; its dead letter was kept.`
    case "NotSaved":
      return `❌ Aurora could not save the re-queued event (database error): message ${id} was not re-queued and its ` +
        "dead letter was kept. The details are in Aurora's log."
  }
}

interface RetryCounts {
  readonly requeued: number
  readonly notRemoved: number
  readonly keptFull: number
  readonly duplicates: number
  readonly notSaved: number
  readonly capacity: number | null
}

/** Retries in the given order, stopping at a full queue or a database error (the rest would fail alike). */
const retryAll = (letters: ReadonlyArray<DeadLetter>, target: RetryTarget) =>
  Effect.gen(function*() {
    let counts: RetryCounts = { requeued: 0, notRemoved: 0, keptFull: 0, duplicates: 0, notSaved: 0, capacity: null }
    for (const [index, letter] of letters.entries()) {
      const outcome = yield* retryOne(letter, target)
      const left = letters.length - index
      switch (outcome._tag) {
        case "Requeued":
          counts = { ...counts, requeued: counts.requeued + 1, notRemoved: counts.notRemoved + (outcome.removed ? 0 : 1) }
          break
        case "Duplicate":
          counts = { ...counts, duplicates: counts.duplicates + 1 }
          break
        case "Full":
          return { ...counts, keptFull: left, capacity: outcome.capacity }
        case "NotSaved":
          return { ...counts, notSaved: left }
      }
    }
    return counts
  })

/**
 * Oldest message first, so each channel's events go back in the order they were posted (the
 * queue is FIFO per channel); ties keep the store's order, oldest failure first.
 */
const retryOrder = (newestFirst: ReadonlyArray<DeadLetter>): ReadonlyArray<DeadLetter> =>
  [...newestFirst].reverse().sort((a, b) => a.event.enqueuedAt - b.event.enqueuedAt)

const allOutcomeText = (counts: RetryCounts, total: number, scope: LetterScope): string => {
  const lines = [`🔁 Re-queued ${counts.requeued} of ${plural(total, "dead letter")} ${whereText(scope)}, oldest first.`]
  if (counts.keptFull > 0) {
    lines.push(
      `Kept ${counts.keptFull}: the queue is full${
        counts.capacity === null ? "" : ` (${plural(counts.capacity, "pending event")})`
      }; ` +
        "run `/aurora queue retry` again once it has drained."
    )
  }
  if (counts.duplicates > 0) lines.push(`Kept ${counts.duplicates}: already queued or running.`)
  if (counts.notSaved > 0) lines.push(`Kept ${counts.notSaved}: a database error stopped the retry (details in Aurora's log).`)
  if (counts.notRemoved > 0) {
    lines.push(
      `⚠️ ${
        plural(counts.notRemoved, "re-queued event is", "re-queued events are")
      } still listed as dead letters (database error).`
    )
  }
  return lines.join("\n")
}

export const queueRetry = (invocation: Invocation) =>
  Effect.gen(function*() {
    const guildId = yield* guildOf(invocation)
    const scope = yield* scopeOf(invocation, "dm")
    if (scope === "dm") yield* requireAccess(invocation, "owner", "/aurora queue retry scope:dm")
    const messageId = yield* deadLetterIdOf(invocation)
    const target = yield* currentAgent(scope, guildId)
    const { agentId } = target
    const partition = partitionOf(scope, guildId)
    const deadLetters = yield* DeadLetters

    if (messageId !== null) {
      const letter = yield* deadLetters.find(partition, messageId)
      if (letter === null) {
        return yield* reject(
          `❌ No dead letter for message ${code(messageId, 40)} ${whereText(scope)}. \`/aurora queue failed\` lists them.`
        )
      }
      const outcome = yield* retryOne(letter, target)
      yield* Effect.logInfo("dead letter retried").pipe(
        Effect.annotateLogs({ scope, messageId, agentId, outcome: outcome._tag })
      )
      return Reply.text(oneOutcomeText(outcome, messageId, agentId, scope))
    }

    const page = yield* deadLetters.list(partition)
    if (page.total === 0) return Reply.text(`✅ No dead letters to retry ${whereText(scope)}.`)
    const counts = yield* retryAll(retryOrder(page.letters), target)
    yield* Effect.logInfo("dead letters retried").pipe(
      Effect.annotateLogs({ scope, agentId, total: page.letters.length, ...counts })
    )
    return Reply.text(allOutcomeText(counts, page.letters.length, scope))
  })

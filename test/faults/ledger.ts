/**
 * What happened to every event of a fault row, from the two ends Aurora sits between: the
 * mentions the fake Discord sent, and what the fake Letta saw and wrote back. Aurora's own word
 * is used only where the fakes cannot know: its dead letters (read from the database after it
 * exited) and its acceptance counters (`/metrics`).
 *
 * Definitions (per message id):
 * - sent: the fake Discord dispatched the mention on the gateway;
 * - requests: `POST /v1/agents/{id}/messages` whose prompt names the message (`- Message ID: <id>`);
 *   a continuation (the answers to an approval stop, which carries no prompt) is not a request
 *   of any message and not a stray: rows that stop for approval count continuations themselves
 *   (the fake Letta records each one);
 * - delivered: at least one run of that message in which the fake Letta wrote the agent's
 *   simulated `discord_send` tool call to the stream: the agent answered in Discord, as far as
 *   anyone in the channel can tell (a run the fake scripted to fail never writes it); or, for a
 *   silent run, a fallback reply the bot itself posted in the fake Discord (`fallbackReplies`);
 * - re-sent: the prompt reached Letta more than once (a transient retry or a restart re-send); a
 *   send a conversation refused without a run (409 busy, 404) does not count: it never ran;
 * - dead-lettered: Aurora's `dead_letters` table holds the message;
 * - duplicated: more than one answer (runs that wrote `discord_send` plus the bot's fallback
 *   replies), or more than one run streamed to its end (`[DONE]`): answered twice;
 * - lost: accepted, yet neither delivered nor dead-lettered. Rejections are counted, not named
 *   (Aurora's metric), so lost = (sent − delivered-or-dead-lettered) − rejected, and a negative
 *   value (a rejected event that ran anyway) is reported as such, not hidden.
 */
import { isContinuation } from "../fakes/letta/Approvals.js"
import type { ReceivedRequest, RunRecord } from "../fakes/FakeLetta.js"
import type { DeadLetterRow } from "./fixtures.js"

export interface EventTrace {
  readonly messageId: string
  /** Messages requests naming the event, in arrival order. */
  readonly requests: ReadonlyArray<ReceivedRequest>
  /** Runs that wrote `discord_send`, plus the bot's own fallback replies. */
  readonly replies: number
  /** Runs that streamed to `[DONE]`. */
  readonly completed: number
  readonly deadLetter: DeadLetterRow | undefined
}

export interface RowCounts {
  readonly sent: number
  readonly accepted: number
  readonly delivered: number
  readonly resent: number
  readonly deadLettered: number
  readonly rejected: number
  readonly duplicated: number
  readonly lost: number
}

export interface Ledger {
  readonly counts: RowCounts
  readonly traces: ReadonlyMap<string, EventTrace>
  /** Messages requests naming no message that was sent (should be none). */
  readonly strays: ReadonlyArray<ReceivedRequest>
}

const messageIdPattern = /- Message ID: (\d+)/

/** Parsed once per request: waits re-read every request on every change of a run. */
const parsedIds = new WeakMap<ReceivedRequest, string | null>()

/** The message a messages request is about: the id in the prompt's metadata block. */
export const messageIdOf = (request: ReceivedRequest): string | undefined => {
  let id = parsedIds.get(request)
  if (id === undefined) {
    id = messageIdPattern.exec(JSON.stringify(request.body ?? ""))?.[1] ?? null
    parsedIds.set(request, id)
  }
  return id ?? undefined
}

export interface LedgerInput {
  readonly sent: ReadonlyArray<string>
  /** Aurora's `aurora_events_rejected_total` over the row (all reasons). */
  readonly rejected: number
  /** Aurora's `aurora_events_enqueued_total`, when it was scraped; else sent − rejected. */
  readonly accepted?: number
  readonly requests: ReadonlyArray<ReceivedRequest>
  readonly runs: ReadonlyArray<RunRecord>
  readonly deadLetters: ReadonlyArray<DeadLetterRow>
  /** Fallback replies the bot posted itself in the fake Discord, per message id (one per reply, however many messages it took). */
  readonly fallbackReplies?: ReadonlyMap<string, number>
}

export const ledgerOf = (input: LedgerInput): Ledger => {
  const sent = new Set(input.sent)
  const runsById = new Map(input.runs.map((run) => [run.runId, run]))
  const requestsOf = new Map<string, Array<ReceivedRequest>>()
  const strays: Array<ReceivedRequest> = []
  for (const request of input.requests) {
    if (request.kind !== "messages" || isContinuation(request.body)) continue
    const id = messageIdOf(request)
    if (id === undefined || !sent.has(id)) {
      strays.push(request)
      continue
    }
    requestsOf.set(id, [...(requestsOf.get(id) ?? []), request])
  }
  const traces = new Map<string, EventTrace>()
  for (const messageId of input.sent) {
    const requests = requestsOf.get(messageId) ?? []
    const runs = requests.flatMap((request) => {
      const run = request.runId === undefined ? undefined : runsById.get(request.runId)
      return run === undefined ? [] : [run]
    })
    traces.set(messageId, {
      messageId,
      requests,
      replies: runs.filter((run) => run.toolCallsWritten.includes("discord_send")).length +
        (input.fallbackReplies?.get(messageId) ?? 0),
      completed: runs.filter((run) => run.doneWritten).length,
      deadLetter: input.deadLetters.find((letter) => letter.messageId === messageId)
    })
  }
  const all = [...traces.values()]
  const accountedFor = all.filter((trace) => trace.replies > 0 || trace.deadLetter !== undefined).length
  return {
    counts: {
      sent: input.sent.length,
      accepted: input.accepted ?? input.sent.length - input.rejected,
      delivered: all.filter((trace) => trace.replies > 0).length,
      resent: all.filter((trace) => trace.requests.filter((request) => request.rejected === undefined).length > 1).length,
      deadLettered: all.filter((trace) => trace.deadLetter !== undefined).length,
      rejected: input.rejected,
      duplicated: all.filter((trace) => trace.replies > 1 || trace.completed > 1).length,
      lost: input.sent.length - accountedFor - input.rejected
    },
    traces,
    strays
  }
}

/** Distinct sent messages delivered so far (for waiting on progress). */
export const deliveredCount = (
  sent: ReadonlySet<string>,
  runs: ReadonlyArray<RunRecord>,
  requests: ReadonlyArray<ReceivedRequest>
): number => {
  const replied = new Set(runs.filter((run) => run.toolCallsWritten.includes("discord_send")).map((run) => run.runId))
  const delivered = new Set<string>()
  for (const request of requests) {
    if (request.kind !== "messages" || request.runId === undefined || !replied.has(request.runId)) continue
    const id = messageIdOf(request)
    if (id !== undefined && sent.has(id)) delivered.add(id)
  }
  return delivered.size
}

/**
 * The conversations routes of the fake Letta server, as @letta-ai/letta-client 1.12 calls them:
 *
 * - `POST /v1/conversations/?agent_id=` (`conversations.create`): 200 with a `Conversation`
 *   (`conv-<n>`, the request's description); 404 `Agent <id> not found` for an agent the fake does
 *   not know (the agents route's rule: known, or with a behaviour scripted); 422 without agent_id.
 * - `GET /v1/conversations/{id}` (`conversations.retrieve`): the `Conversation`, or 404.
 * - `POST /v1/conversations/{id}/messages` (`conversations.messages.create`): always an SSE stream;
 *   takes the agent's next scripted Behaviour, exactly like the agents route. The server's rule:
 *   while a run of the conversation is in flight (a detached one included, see Runs.ts) another
 *   send is answered 409 `{"detail":"Cannot send a new message: Another request (run_id=<id>) is
 *   currently being processed for this conversation. Please wait for it to complete."}` and takes
 *   no behaviour. An unknown or deleted conversation: 404 `{"detail":"Conversation <id> not found"}`.
 *   Before all that, a body the server would refuse (Messages.ts) is answered 422.
 *   A pending tool approval is checked after that (Approvals.ts): a user message is answered 409,
 *   a continuation is validated and, when it answers the pending calls, plays the next behaviour.
 * - `POST /v1/conversations/{id}/cancel` (`conversations.cancel`): ends every run of the
 *   conversation in flight (status from `setCancelStatus`, shared with the agents route).
 *
 * Faults: busy N times (for a conversation, or for any conversation of an agent), a conversation
 * deleted, creates failing. Records: each request (with conversation and agent ids), the
 * conversations created, the busy answers, the most sends on one conversation at once.
 */
import type * as Http from "node:http"
import { Effect } from "effect"
import type { Approvals } from "./Approvals.js"
import type { BusyAnswer, CancelRecord, ConversationRecord, ReceivedRequest } from "./Records.js"
import { readMessages } from "./Messages.js"
import { json, type Runs } from "./Runs.js"
import type { Behaviour } from "./Script.js"

/** The detail of the server's busy answer (409). */
export const busyDetail = (runId: string) =>
  `Cannot send a new message: Another request (run_id=${runId}) is currently being processed for this conversation. Please wait for it to complete.`

export interface FakeConversations {
  /** Every conversation created, in creation order (deleted ones marked). */
  readonly conversations: Effect.Effect<ReadonlyArray<ConversationRecord>>
  /** Messages requests on the conversations route (of one conversation), accepted or rejected. */
  readonly conversationMessages: (conversationId?: string) => Effect.Effect<ReadonlyArray<ReceivedRequest>>
  /** Every 409 busy answer, in order. */
  readonly busyAnswers: Effect.Effect<ReadonlyArray<BusyAnswer>>
  /** The next `times` sends to this conversation are answered busy (no run, no behaviour taken). */
  readonly scriptBusy: (conversationId: string, times: number) => Effect.Effect<void>
  /** The next `times` sends to any conversation of the agent (created later included) are answered busy. */
  readonly scriptBusyForAgent: (agentId: string, times: number) => Effect.Effect<void>
  /** Deletes the conversation on the "server": every later request on it is answered 404. Runs in flight go on. */
  readonly deleteConversation: (conversationId: string) => Effect.Effect<void>
  /** The next `times` creates (any agent) are answered `status` with `body` and create nothing. */
  readonly failConversationCreates: (times: number, status?: number, body?: unknown) => Effect.Effect<void>
  /** Runs of the conversation in flight now (0 or 1, detached runs included). */
  readonly conversationInFlight: (conversationId: string) => Effect.Effect<number>
  /**
   * The most sends on one conversation (or on the worst one, without an id) at once, as the client
   * drove them: a send answered busy because a run was in flight there counts as overlapping it.
   * 1 when the client never overlapped (scripted busy answers do not count).
   */
  readonly maxConcurrentSends: (conversationId?: string) => Effect.Effect<number>
  /** Waits for the n-th (1-based) conversation created (of the agent, when given). */
  readonly awaitConversationCreated: (n: number, agentId?: string) => Effect.Effect<ConversationRecord>
  /** Waits for the n-th messages request on the conversations route (of one conversation), accepted or not. */
  readonly awaitConversationMessages: (n: number, conversationId?: string) => Effect.Effect<ReceivedRequest>
}

/** A request as the server parsed it, before its route decided what it is. */
export interface Incoming {
  readonly fields: Pick<ReceivedRequest, "method" | "path" | "query" | "headers" | "body" | "at">
  readonly url: URL
}

export interface ConversationDeps {
  readonly runs: Runs
  readonly approvals: Approvals
  readonly knowsAgent: (agentId: string) => boolean
  /** The agent's next behaviour; its conversation exists, so the agent does. */
  readonly nextBehaviour: (agentId: string) => Behaviour
  readonly cancelStatus: () => number
  /** Appends to the requests (with its seq) and wakes request waiters. */
  readonly record: (request: Omit<ReceivedRequest, "seq">) => void
  readonly recordCancel: (cancel: CancelRecord) => void
  readonly awaitRequest: (n: number, filter: (request: ReceivedRequest) => boolean) => Effect.Effect<ReceivedRequest>
}

const createPath = /^\/v1\/conversations\/?$/
const conversationPath = /^\/v1\/conversations\/([^/]+)\/?$/
const messagesPath = /^\/v1\/conversations\/([^/]+)\/messages\/?$/
const cancelPath = /^\/v1\/conversations\/([^/]+)\/cancel\/?$/

const field = (body: unknown, key: string): unknown =>
  typeof body === "object" && body !== null ? Reflect.get(body, key) : undefined

const stringOrNull = (value: unknown): string | null => (typeof value === "string" ? value : null)

export const makeConversations = (deps: ConversationDeps) => {
  const conversations = new Map<string, ConversationRecord>()
  const lastMessageAt = new Map<string, number>()
  const busyFor = new Map<string, number>()
  const busyForAgent = new Map<string, number>()
  const maxSends = new Map<string, number>()
  const busyAnswers: Array<BusyAnswer> = []
  const createFailures: Array<{ readonly status: number; readonly body: unknown }> = []
  let conversationCounter = 0
  let elsewhereCounter = 0

  const live = (id: string) => {
    const conversation = conversations.get(id)
    return conversation === undefined || conversation.deleted ? undefined : conversation
  }

  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString())

  /** The `Conversation` of the SDK's types. */
  const view = (c: ConversationRecord) => ({
    id: c.id,
    agent_id: c.agentId,
    archived: false,
    archived_at: null,
    context_window_limit: typeof field(c.body, "context_window_limit") === "number"
      ? field(c.body, "context_window_limit")
      : null,
    created_at: iso(c.createdAt),
    created_by_id: null,
    description: c.description,
    in_context_message_ids: null,
    last_message_at: iso(lastMessageAt.get(c.id)),
    last_updated_by_id: null,
    model: stringOrNull(field(c.body, "model")),
    model_settings: null,
    summary: stringOrNull(field(c.body, "summary")),
    updated_at: iso(lastMessageAt.get(c.id) ?? c.createdAt)
  })

  const notFound = (res: Http.ServerResponse, id: string) => json(res, 404, { detail: `Conversation ${id} not found` })

  const create = (request: Incoming, res: Http.ServerResponse) => {
    const agentId = request.url.searchParams.get("agent_id") ?? undefined
    const base = { ...request.fields, kind: "conversation-create" as const, ...(agentId === undefined ? {} : { agentId }) }
    if (agentId === undefined) {
      deps.record(base)
      return json(res, 422, { detail: [{ type: "missing", loc: ["query", "agent_id"], msg: "Field required" }] })
    }
    const failure = createFailures.shift()
    if (failure !== undefined) {
      deps.record(base)
      return json(res, failure.status, failure.body)
    }
    if (!deps.knowsAgent(agentId)) {
      deps.record(base)
      return json(res, 404, { detail: `Agent ${agentId} not found` })
    }
    const conversation: ConversationRecord = {
      id: `conv-${++conversationCounter}`,
      agentId,
      description: stringOrNull(field(request.fields.body, "description")),
      body: request.fields.body,
      createdAt: request.fields.at,
      deleted: false
    }
    conversations.set(conversation.id, conversation)
    deps.record({ ...base, conversationId: conversation.id })
    json(res, 200, view(conversation))
  }

  const busy = (
    res: Http.ServerResponse,
    conversation: ConversationRecord,
    reason: BusyAnswer["reason"],
    blockingRunId: string,
    request: Incoming
  ) => {
    busyAnswers.push({
      conversationId: conversation.id,
      agentId: conversation.agentId,
      reason,
      blockingRunId,
      at: request.fields.at
    })
    json(res, 409, { detail: busyDetail(blockingRunId) })
  }

  /** Takes one scripted busy answer for the conversation (its own first, then its agent's). */
  const takeScriptedBusy = (conversation: ConversationRecord): boolean => {
    for (const [counts, key] of [[busyFor, conversation.id], [busyForAgent, conversation.agentId]] as const) {
      const left = counts.get(key) ?? 0
      if (left > 0) {
        counts.set(key, left - 1)
        return true
      }
    }
    return false
  }

  const send = (request: Incoming, id: string, res: Http.ServerResponse) => {
    const conversation = live(id)
    const known = conversations.get(id)
    const base = {
      ...request.fields,
      kind: "messages" as const,
      conversationId: id,
      ...(known === undefined ? {} : { agentId: known.agentId })
    }
    // The body is validated before the route's handler looks the conversation up, as on the server.
    const sent = readMessages(request.fields.body)
    if (sent._tag === "Invalid") {
      deps.record({ ...base, rejected: "invalid", issues: sent.issues })
      return json(res, 422, { detail: sent.issues })
    }
    if (conversation === undefined) {
      deps.record({ ...base, rejected: "not-found", messages: sent.messages })
      return notFound(res, id)
    }
    const inFlight = deps.runs.openRuns(id)
    const blocking = inFlight[0]
    if (blocking !== undefined) {
      maxSends.set(id, Math.max(maxSends.get(id) ?? 0, inFlight.length + 1))
      deps.record({ ...base, rejected: "busy", messages: sent.messages })
      return busy(res, conversation, "in-flight", blocking, request)
    }
    if (takeScriptedBusy(conversation)) {
      deps.record({ ...base, rejected: "busy", messages: sent.messages })
      return busy(res, conversation, "scripted", `run-elsewhere-${++elsewhereCounter}`, request)
    }
    // After the lock (busy) and before the agent runs, as the server checks a pending approval.
    const target = { agentId: conversation.agentId, conversationId: id }
    const admission = deps.approvals.admit(target, request.fields.body)
    if (admission._tag === "Reject") {
      deps.record({ ...base, rejected: admission.rejected })
      return json(res, admission.status, admission.body)
    }
    const runId = deps.runs.nextRunId()
    deps.runs.start(conversation.agentId, runId, res, id)
    maxSends.set(id, Math.max(maxSends.get(id) ?? 0, 1))
    lastMessageAt.set(id, request.fields.at)
    deps.record({ ...base, runId, messages: sent.messages })
    if (admission._tag === "Continue") deps.approvals.commit(target, admission, runId)
    deps.runs.play(runId, deps.approvals.resolve(target, deps.nextBehaviour(conversation.agentId), request.fields.body))
  }

  const cancel = (request: Incoming, id: string, res: Http.ServerResponse) => {
    const conversation = live(id)
    const known = conversations.get(id)
    const base = { ...request.fields, kind: "cancel" as const, conversationId: id, ...(known ? { agentId: known.agentId } : {}) }
    if (conversation === undefined) {
      deps.record({ ...base, rejected: "not-found" })
      return notFound(res, id)
    }
    deps.record(base)
    const status = deps.cancelStatus()
    if (status !== 200) {
      deps.recordCancel({ agentId: conversation.agentId, runIds: undefined, conversationId: id, cancelledRunIds: [] })
      return json(res, status, { detail: "fake cancel failure" })
    }
    const cancelled = deps.runs.openRuns(id).filter((runId) => deps.runs.cancel(runId))
    deps.recordCancel({ agentId: conversation.agentId, runIds: undefined, conversationId: id, cancelledRunIds: cancelled })
    json(res, 200, Object.fromEntries(cancelled.map((runId) => [runId, "cancelled"])))
  }

  /** Handles the request when it is on a conversations route; false when it is not. */
  const handle = (request: Incoming, res: Http.ServerResponse): boolean => {
    const { method, path } = request.fields
    const idOf = (match: RegExpExecArray | null) => (match === null ? undefined : decodeURIComponent(match[1] ?? ""))
    if (method === "POST" && createPath.test(path)) {
      create(request, res)
      return true
    }
    const messages = method === "POST" ? idOf(messagesPath.exec(path)) : undefined
    if (messages !== undefined) {
      send(request, messages, res)
      return true
    }
    const cancelled = method === "POST" ? idOf(cancelPath.exec(path)) : undefined
    if (cancelled !== undefined) {
      cancel(request, cancelled, res)
      return true
    }
    const retrieved = method === "GET" ? idOf(conversationPath.exec(path)) : undefined
    if (retrieved === undefined) return false
    const conversation = live(retrieved)
    const known = conversations.get(retrieved)
    deps.record({
      ...request.fields,
      kind: "conversation",
      conversationId: retrieved,
      ...(known === undefined ? {} : { agentId: known.agentId })
    })
    if (conversation === undefined) notFound(res, retrieved)
    else json(res, 200, view(conversation))
    return true
  }

  const isConversationSend = (conversationId?: string) => (r: ReceivedRequest) =>
    r.kind === "messages" && r.conversationId !== undefined &&
    (conversationId === undefined || r.conversationId === conversationId)

  const api = (requests: () => ReadonlyArray<ReceivedRequest>): FakeConversations => ({
    conversations: Effect.sync(() => [...conversations.values()]),
    conversationMessages: (conversationId) => Effect.sync(() => requests().filter(isConversationSend(conversationId))),
    busyAnswers: Effect.sync(() => [...busyAnswers]),
    scriptBusy: (conversationId, times) => Effect.sync(() => void busyFor.set(conversationId, times)),
    scriptBusyForAgent: (agentId, times) => Effect.sync(() => void busyForAgent.set(agentId, times)),
    deleteConversation: (conversationId) =>
      Effect.sync(() => {
        const conversation = conversations.get(conversationId)
        if (conversation !== undefined) conversations.set(conversationId, { ...conversation, deleted: true })
      }),
    failConversationCreates: (times, status = 500, body = { detail: `fake status ${status}` }) =>
      Effect.sync(() => {
        for (let i = 0; i < times; i++) createFailures.push({ status, body })
      }),
    conversationInFlight: (conversationId) => Effect.sync(() => deps.runs.openRuns(conversationId).length),
    maxConcurrentSends: (conversationId) =>
      Effect.sync(() => conversationId === undefined ? Math.max(0, ...maxSends.values()) : maxSends.get(conversationId) ?? 0),
    awaitConversationCreated: (n, agentId) =>
      deps.awaitRequest(n, (r) =>
        r.kind === "conversation-create" && r.conversationId !== undefined &&
        (agentId === undefined || r.agentId === agentId)).pipe(Effect.flatMap((r) => {
          const conversation = conversations.get(r.conversationId ?? "")
          return conversation === undefined
            ? Effect.dieMessage("a created conversation is always recorded")
            : Effect.succeed(conversation)
        })),
    awaitConversationMessages: (n, conversationId) => deps.awaitRequest(n, isConversationSend(conversationId))
  })

  return { handle, api } as const
}

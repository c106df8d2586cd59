/**
 * A loopback fake of the Letta HTTP/SSE API, for driving the real `@letta-ai/letta-client`.
 *
 * `makeFakeLetta` starts a node:http server on 127.0.0.1 (free port) in the current Scope and
 * closes it, with every open socket, when the scope closes. Each `POST /v1/agents/{id}/messages`
 * takes the next scripted Behaviour of that agent (or the default: an instant normal run), gets a
 * fresh run id, and is counted in flight until its response closes; a body whose `messages` the
 * server would refuse (letta/Messages.ts: the SDK's shapes) is answered 422 and starts no run. The conversations routes
 * (letta/Conversations.ts) play the same behaviours on conversations, with the server's one-run-
 * per-conversation rule. Both routes follow the server's tool-approval protocol (letta/Approvals.ts):
 * a run that stops with `requires_approval` leaves its tool calls pending until a continuation
 * answers them. Everything received is recorded; `awaitRequest` / `awaitRuns` /
 * `awaitConversationCreated` / `awaitContinuation` let tests wait without polling.
 *
 * Parts, re-exported here: letta/Script.ts (items, frames, behaviours), letta/Runs.ts (runs, SSE),
 * letta/Conversations.ts, letta/Messages.ts (what a send's messages must look like, as recorded),
 * letta/Approvals.ts, letta/Records.ts. Node callbacks own the mutable state; tests read it
 * through Effect accessors.
 */
import * as Http from "node:http"
import type { AddressInfo, Socket } from "node:net"
import { Deferred, Effect, Exit, type Scope } from "effect"
import {
  type ApprovalTarget,
  type ContinuationRecord,
  isContinuation,
  makeApprovals,
  type PendingApproval,
  type UndeclaredClientTool
} from "./letta/Approvals.js"
import { type FakeConversations, makeConversations } from "./letta/Conversations.js"
import type { CancelRecord, ReceivedRequest, RequestKind, RunRecord } from "./letta/Records.js"
import { readMessages } from "./letta/Messages.js"
import { json, makeRuns } from "./letta/Runs.js"
import { type Behaviour, defaultBehaviour } from "./letta/Script.js"

export * from "./letta/Script.js"
export type * from "./letta/Records.js"
export { busyDetail, type FakeConversations } from "./letta/Conversations.js"
export { imageUrlsOf, readMessages, type SentMessage, textOf } from "./letta/Messages.js"
export {
  type ApprovalTarget,
  type ContinuationRecord,
  declaredClientTools,
  invalidToolCallIdsDetail,
  noPendingApprovalDetail,
  type PendingApproval,
  pendingApprovalDetail,
  type UndeclaredClientTool
} from "./letta/Approvals.js"

export interface FakeLettaOptions {
  /** Known agents, id -> name. Unknown agents get 404 (unless a behaviour is scripted for them). */
  readonly agents?: Readonly<Record<string, string>>
  readonly defaultBehaviour?: Behaviour
}

export interface FakeLetta extends FakeConversations {
  /** Base URL for the client, e.g. http://127.0.0.1:54321 */
  readonly url: string
  readonly requests: Effect.Effect<ReadonlyArray<ReceivedRequest>>
  /**
   * Messages requests of both routes (`conversationId` set on the conversations route; a send
   * answered busy or not found there has `rejected` and no run id), optionally of one agent.
   */
  readonly messageRequests: (agentId?: string) => Effect.Effect<ReadonlyArray<ReceivedRequest>>
  /** Cancels of both routes (a conversation's carry `conversationId` and `cancelledRunIds`). */
  readonly cancels: Effect.Effect<ReadonlyArray<CancelRecord>>
  readonly runs: Effect.Effect<ReadonlyArray<RunRecord>>
  /** Appends behaviours to the agent's queue; each messages request (either route) takes the next one. */
  readonly script: (agentId: string, ...behaviours: ReadonlyArray<Behaviour>) => Effect.Effect<void>
  /** What an agent (or every agent, without an id) does when its queue is empty. */
  readonly setDefault: (behaviour: Behaviour, agentId?: string) => Effect.Effect<void>
  readonly addAgent: (agentId: string, name?: string) => Effect.Effect<void>
  /** Status of both cancel routes (default 200). */
  readonly setCancelStatus: (status: number) => Effect.Effect<void>
  /** Runs of the agent (both routes) in flight now, and the most ever seen at once (all agents without an id). */
  readonly inFlight: (agentId: string) => Effect.Effect<number>
  readonly maxInFlight: (agentId?: string) => Effect.Effect<number>
  /** Waits for the n-th (1-based) request matching `filter` (all requests without one). */
  readonly awaitRequest: (n: number, filter?: (request: ReceivedRequest) => boolean) => Effect.Effect<ReceivedRequest>
  /** Waits for the n-th messages request, either route (of one agent when given). */
  readonly awaitMessages: (n: number, agentId?: string) => Effect.Effect<ReceivedRequest>
  /**
   * Every item of every continuation (approvals and tool returns) on either route, in order:
   * accepted, repeated or rejected, with what the client sent.
   */
  readonly continuations: Effect.Effect<ReadonlyArray<ContinuationRecord>>
  /** The tool calls awaiting approval on a conversation (or, without one, an agent's default conversation). */
  readonly pendingApproval: (target: ApprovalTarget) => Effect.Effect<PendingApproval | undefined>
  /** Client tool calls a script made that the request had not declared in `client_tools`. */
  readonly undeclaredClientTools: Effect.Effect<ReadonlyArray<UndeclaredClientTool>>
  /** Waits for the n-th (1-based) continuation request (either route, accepted or not). */
  readonly awaitContinuation: (n: number) => Effect.Effect<ReceivedRequest>
  /** Waits until n runs have finished (any outcome). */
  readonly awaitRunsFinished: (n: number) => Effect.Effect<ReadonlyArray<RunRecord>>
  /**
   * Waits until `condition` holds for the runs and the requests received (checked now and on
   * every change of a run); gives the runs.
   */
  readonly awaitRuns: (
    condition: (runs: ReadonlyArray<RunRecord>, requests: ReadonlyArray<ReceivedRequest>) => boolean
  ) => Effect.Effect<ReadonlyArray<RunRecord>>
  /**
   * Stops listening and drops every open connection (in-flight runs are aborted): the client's
   * next request is refused, as when the server is down.
   */
  readonly goOffline: Effect.Effect<void>
  /** Listens again on the same port. */
  readonly goOnline: Effect.Effect<void>
}

interface Waiter {
  readonly n: number
  readonly filter: (request: ReceivedRequest) => boolean
  readonly deferred: Deferred.Deferred<ReceivedRequest>
}

interface RunWaiter {
  readonly ready: (runs: ReadonlyArray<RunRecord>, requests: ReadonlyArray<ReceivedRequest>) => boolean
  readonly deferred: Deferred.Deferred<ReadonlyArray<RunRecord>>
}

const agentPath = /^\/v1\/agents\/([^/]+)\/?$/
const messagesPath = /^\/v1\/agents\/([^/]+)\/messages\/?$/
const cancelPath = /^\/v1\/agents\/([^/]+)\/messages\/cancel\/?$/

export const makeFakeLetta = (options: FakeLettaOptions = {}): Effect.Effect<FakeLetta, never, Scope.Scope> =>
  Effect.gen(function*() {
    const agents = new Map<string, string>(Object.entries(options.agents ?? {}))
    const queues = new Map<string, Array<Behaviour>>()
    const agentDefaults = new Map<string, Behaviour>()
    let globalDefault: Behaviour = options.defaultBehaviour ?? defaultBehaviour
    let cancelStatus = 200
    const requests: Array<ReceivedRequest> = []
    const cancels: Array<CancelRecord> = []
    let waiters: Array<Waiter> = []
    let runWaiters: Array<RunWaiter> = []
    const sockets = new Set<Socket>()

    const isFinished = (run: RunRecord) => run.finishedAt !== undefined

    const wakeRequestWaiters = () => {
      waiters = waiters.filter((w) => {
        const match = requests.filter(w.filter)[w.n - 1]
        if (match === undefined) return true
        Deferred.unsafeDone(w.deferred, Exit.succeed(match))
        return false
      })
    }

    const wakeRunWaiters = () => {
      if (runWaiters.length === 0) return
      const all = runs.all()
      runWaiters = runWaiters.filter((w) => {
        if (!w.ready(all, requests)) return true
        Deferred.unsafeDone(w.deferred, Exit.succeed(all))
        return false
      })
    }

    const approvals = makeApprovals()
    const runs = makeRuns(wakeRunWaiters, (run, item) => approvals.observe(run, item))

    const record = (request: Omit<ReceivedRequest, "seq">) => {
      requests.push({ seq: requests.length + 1, ...request })
      wakeRequestWaiters()
    }

    const awaitRequest = (n: number, filter: (request: ReceivedRequest) => boolean = () => true) =>
      Effect.gen(function*() {
        const deferred = yield* Deferred.make<ReceivedRequest>()
        waiters.push({ n, filter, deferred })
        wakeRequestWaiters()
        return yield* Deferred.await(deferred)
      })

    const knowsAgent = (agentId: string) => agents.has(agentId) || (queues.get(agentId)?.length ?? 0) > 0

    const nextBehaviour = (agentId: string): Behaviour | undefined => {
      const queued = queues.get(agentId)?.shift()
      if (queued !== undefined) return queued
      if (!agents.has(agentId)) return undefined
      return agentDefaults.get(agentId) ?? globalDefault
    }

    const conversations = makeConversations({
      runs,
      approvals,
      knowsAgent,
      nextBehaviour: (agentId) => nextBehaviour(agentId) ?? agentDefaults.get(agentId) ?? globalDefault,
      cancelStatus: () => cancelStatus,
      record,
      recordCancel: (cancel) => void cancels.push(cancel),
      awaitRequest
    })

    const respondCancel = (agentId: string, body: unknown, res: Http.ServerResponse) => {
      const raw = typeof body === "object" && body !== null ? Reflect.get(body, "run_ids") : undefined
      const runIds = Array.isArray(raw) ? raw.filter((id): id is string => typeof id === "string") : undefined
      cancels.push({ agentId, runIds })
      if (cancelStatus !== 200) return json(res, cancelStatus, { detail: "fake cancel failure" })
      // Like the server: the cancelled run's stream ends with stop_reason cancelled.
      for (const runId of runIds ?? []) runs.cancel(runId)
      json(res, 200, Object.fromEntries((runIds ?? []).map((id) => [id, "cancelled"])))
    }

    const handle = (req: Http.IncomingMessage, res: Http.ServerResponse, text: string) => {
      const url = new URL(req.url ?? "/", "http://fake")
      const path = url.pathname
      const method = req.method ?? "GET"
      let body: unknown = undefined
      if (text !== "") {
        try {
          body = JSON.parse(text)
        } catch {
          body = text
        }
      }
      const headers: Record<string, string> = {}
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value
      }
      const fields = { method, path, query: url.search, headers, body, at: Date.now() }
      if (conversations.handle({ fields, url }, res)) return

      const cancel = method === "POST" ? cancelPath.exec(path) : null
      const messages = method === "POST" && cancel === null ? messagesPath.exec(path) : null
      const agent = method === "GET" ? agentPath.exec(path) : null
      const health = method === "GET" && /^\/v1\/health\/?$/.test(path)
      const agentId = decodeURIComponent((cancel ?? messages ?? agent)?.[1] ?? "") || undefined
      const kind: RequestKind = cancel ? "cancel" : messages ? "messages" : agent ? "agent" : health ? "health" : "other"
      const sent = kind === "messages" ? readMessages(body) : undefined
      if (sent?._tag === "Invalid") {
        record({ kind, ...fields, ...(agentId === undefined ? {} : { agentId }), rejected: "invalid", issues: sent.issues })
        return json(res, 422, { detail: sent.issues })
      }
      // A known agent's default conversation may have tool calls awaiting approval: decided before
      // the request takes a run or a behaviour.
      const target = { agentId: agentId ?? "" }
      const admission = kind === "messages" && agentId !== undefined && knowsAgent(agentId)
        ? approvals.admit(target, body)
        : undefined
      if (admission?._tag === "Reject") {
        record({ kind, ...fields, agentId: target.agentId, rejected: admission.rejected })
        return json(res, admission.status, admission.body)
      }
      const runId = kind === "messages" ? runs.nextRunId() : undefined
      if (kind === "messages" && agentId !== undefined && runId !== undefined) runs.start(agentId, runId, res)
      record({
        kind,
        ...fields,
        ...(agentId === undefined ? {} : { agentId }),
        ...(runId === undefined ? {} : { runId }),
        ...(sent === undefined ? {} : { messages: sent.messages })
      })

      if (health) return json(res, 200, { status: "ok", version: "fake-letta" })
      if (agent && agentId !== undefined) {
        const name = agents.get(agentId)
        return name === undefined
          ? json(res, 404, { detail: `Agent ${agentId} not found` })
          : json(res, 200, { id: agentId, name, agent_type: "letta_v1_agent" })
      }
      if (cancel && agentId !== undefined) return respondCancel(agentId, body, res)
      if (messages && agentId !== undefined && runId !== undefined) {
        const behaviour = nextBehaviour(agentId)
        if (behaviour === undefined) return json(res, 404, { detail: `Agent ${agentId} not found` })
        if (admission?._tag === "Continue") approvals.commit(target, admission, runId)
        return runs.play(runId, approvals.resolve(target, behaviour, body))
      }
      return json(res, 404, { detail: `no route for ${method} ${path}` })
    }

    const server = Http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (chunk: Buffer) => chunks.push(chunk))
      req.on("end", () => handle(req, res, Buffer.concat(chunks).toString("utf8")))
    })
    server.on("connection", (socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
    })

    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as AddressInfo).port)))
      }),
      () =>
        Effect.async<void>((resume) => {
          runs.clearTimers()
          for (const socket of sockets) socket.destroy()
          // Called with an error when the fake is offline (not listening): closed either way.
          server.close(() => resume(Effect.void))
        })
    )

    const goOffline = Effect.async<void>((resume) => {
      if (!server.listening) return resume(Effect.void)
      server.close(() => resume(Effect.void))
      // Kept-alive connections would still reach the handler: a server that is down has none.
      for (const socket of sockets) socket.destroy()
      runs.abortDetachable()
    })

    const goOnline = Effect.async<void>((resume) => {
      if (server.listening) return resume(Effect.void)
      server.once("error", (error) => resume(Effect.die(error)))
      server.listen(port, "127.0.0.1", () => resume(Effect.void))
    })

    const awaitRuns = (
      ready: (runs: ReadonlyArray<RunRecord>, requests: ReadonlyArray<ReceivedRequest>) => boolean
    ) =>
      Effect.gen(function*() {
        const deferred = yield* Deferred.make<ReadonlyArray<RunRecord>>()
        runWaiters.push({ ready, deferred })
        wakeRunWaiters()
        return yield* Deferred.await(deferred)
      })

    const isMessages = (agentId?: string) => (r: ReceivedRequest) =>
      r.kind === "messages" && (agentId === undefined || r.agentId === agentId)

    const fake: FakeLetta = {
      ...conversations.api(() => requests),
      url: `http://127.0.0.1:${port}`,
      requests: Effect.sync(() => [...requests]),
      messageRequests: (agentId) => Effect.sync(() => requests.filter(isMessages(agentId))),
      cancels: Effect.sync(() => [...cancels]),
      runs: Effect.sync(() => runs.all()),
      script: (agentId, ...behaviours) =>
        Effect.sync(() => {
          queues.set(agentId, [...(queues.get(agentId) ?? []), ...behaviours])
        }),
      setDefault: (behaviour, agentId) =>
        Effect.sync(() => {
          if (agentId === undefined) globalDefault = behaviour
          else agentDefaults.set(agentId, behaviour)
        }),
      addAgent: (agentId, name = agentId) => Effect.sync(() => void agents.set(agentId, name)),
      setCancelStatus: (status) => Effect.sync(() => void (cancelStatus = status)),
      inFlight: (agentId) => Effect.sync(() => runs.inFlight(agentId)),
      maxInFlight: (agentId) => Effect.sync(() => runs.maxInFlight(agentId)),
      awaitRequest,
      awaitMessages: (n, agentId) => awaitRequest(n, isMessages(agentId)),
      continuations: Effect.sync(() => approvals.continuations()),
      pendingApproval: (target) => Effect.sync(() => approvals.pending(target)),
      undeclaredClientTools: Effect.sync(() => approvals.undeclared()),
      awaitContinuation: (n) => awaitRequest(n, (r) => r.kind === "messages" && isContinuation(r.body)),
      awaitRunsFinished: (n) =>
        awaitRuns((all) => all.filter(isFinished).length >= n).pipe(Effect.map((all) => all.filter(isFinished))),
      awaitRuns,
      goOffline,
      goOnline
    }
    return fake
  })

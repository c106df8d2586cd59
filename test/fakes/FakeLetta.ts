/**
 * A loopback fake of the Letta HTTP/SSE API, for driving the real `@letta-ai/letta-client`.
 *
 * `makeFakeLetta` starts a node:http server on 127.0.0.1 (free port) in the current Scope and
 * closes it, with every open socket, when the scope closes. Each `POST /v1/agents/{id}/messages`
 * takes the next scripted Behaviour of that agent (or the default: an instant normal run), gets a
 * fresh run id, and is counted in flight until its response closes. Everything received is
 * recorded; `awaitRequest` / `awaitRunsFinished` let tests wait without polling.
 *
 * SSE framing follows the server: `data: <json>\n\n`, `data: [DONE]\n\n`,
 * `event: error\ndata: <json>\n\n`.
 *
 * Node callbacks own the mutable state below; tests read it through Effect accessors.
 */
import * as Http from "node:http"
import type { AddressInfo, Socket } from "node:net"
import { Deferred, Effect, Exit, type Scope } from "effect"

/** One streamed item, as JSON. `run_id`, `id` and `date` are filled in when absent. */
export type StreamItem = { readonly message_type: string } & Readonly<Record<string, unknown>>

export type Frame =
  | { readonly _tag: "Item"; readonly item: StreamItem }
  /** An `event: error` frame: the client throws an APIError without a status. */
  | { readonly _tag: "ErrorEvent"; readonly data: Readonly<Record<string, unknown>> }
  | { readonly _tag: "Raw"; readonly text: string }
  | { readonly _tag: "Done" }
  | { readonly _tag: "Pause"; readonly millis: number }
  /** Stop writing and keep the connection open (until the client leaves, a cancel, or close). */
  | { readonly _tag: "Hang" }
  /** Close the connection mid-stream (after what was written is delivered), without ending the response. */
  | { readonly _tag: "Drop" }

export type Behaviour =
  | {
    readonly _tag: "Stream"
    readonly frames: ReadonlyArray<Frame>
    /** Milliseconds before the headers. */
    readonly delayMs?: number
    /** false: leave items without a run id. */
    readonly withRunId?: boolean
  }
  | {
    readonly _tag: "Status"
    readonly status: number
    readonly body?: unknown
    readonly headers?: Readonly<Record<string, string>>
    readonly delayMs?: number
  }
  | { readonly _tag: "HangBeforeHeaders" }

// --- items and frames --------------------------------------------------------

export const Items = {
  reasoning: (reasoning: string): StreamItem => ({ message_type: "reasoning_message", reasoning }),
  toolCall: (name: string, args: unknown = {}, toolCallId = `call-${name}`): StreamItem => ({
    message_type: "tool_call_message",
    tool_call: { name, arguments: typeof args === "string" ? args : JSON.stringify(args), tool_call_id: toolCallId }
  }),
  /** The newer shape: a `tool_calls` list (and the deprecated `tool_call` with the first). */
  toolCalls: (calls: ReadonlyArray<{ name: string; args?: unknown; toolCallId: string }>): StreamItem => {
    const list = calls.map((c) => ({
      name: c.name,
      arguments: typeof c.args === "string" ? c.args : JSON.stringify(c.args ?? {}),
      tool_call_id: c.toolCallId
    }))
    return { message_type: "tool_call_message", tool_call: list[0], tool_calls: list }
  },
  toolReturn: (toolCallId: string, status: "success" | "error" = "success", toolReturn = "ok"): StreamItem => ({
    message_type: "tool_return_message",
    tool_call_id: toolCallId,
    status,
    tool_return: toolReturn
  }),
  assistant: (content: string): StreamItem => ({ message_type: "assistant_message", content }),
  ping: (): StreamItem => ({ message_type: "ping" }),
  errorMessage: (errorType: string, message: string, detail?: string): StreamItem => ({
    message_type: "error_message",
    error_type: errorType,
    message,
    ...(detail === undefined ? {} : { detail })
  }),
  stopReason: (stopReason: string): StreamItem => ({ message_type: "stop_reason", stop_reason: stopReason }),
  usage: (usage: { prompt?: number; completion?: number; steps?: number } = {}): StreamItem => {
    const prompt = usage.prompt ?? 120
    const completion = usage.completion ?? 30
    return {
      message_type: "usage_statistics",
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
      step_count: usage.steps ?? 2
    }
  }
} as const

export const Frames = {
  item: (item: StreamItem): Frame => ({ _tag: "Item", item }),
  items: (items: ReadonlyArray<StreamItem>): ReadonlyArray<Frame> => items.map((item) => ({ _tag: "Item", item })),
  errorEvent: (data: Readonly<Record<string, unknown>>): Frame => ({ _tag: "ErrorEvent", data }),
  raw: (text: string): Frame => ({ _tag: "Raw", text }),
  done: { _tag: "Done" } as Frame,
  pause: (millis: number): Frame => ({ _tag: "Pause", millis }),
  hang: { _tag: "Hang" } as Frame,
  drop: { _tag: "Drop" } as Frame
} as const

// --- behaviours --------------------------------------------------------------

export interface RunOptions {
  readonly items?: ReadonlyArray<StreamItem>
  readonly stopReason?: string
  readonly usage?: boolean
  readonly delayMs?: number
  readonly withRunId?: boolean
}

const defaultItems: ReadonlyArray<StreamItem> = [
  Items.reasoning("The user greeted me; I will answer in the channel."),
  Items.toolCall("discord_send", { channel_id: "100", content: "Hello there!" }, "call-send-1"),
  Items.toolReturn("call-send-1", "success", "sent"),
  Items.assistant("I replied in the channel.")
]

export const Behaviours = {
  /** A stream of exactly these frames. */
  stream: (frames: ReadonlyArray<Frame>, options: { delayMs?: number; withRunId?: boolean } = {}): Behaviour => ({
    _tag: "Stream",
    frames,
    ...options
  }),
  /** A complete run: the items, then stop_reason (end_turn unless told), usage, [DONE]. */
  run: (options: RunOptions = {}): Behaviour => ({
    _tag: "Stream",
    frames: [
      ...Frames.items(options.items ?? defaultItems),
      Frames.item(Items.stopReason(options.stopReason ?? "end_turn")),
      ...(options.usage === false ? [] : [Frames.item(Items.usage())]),
      Frames.done
    ],
    ...(options.delayMs === undefined ? {} : { delayMs: options.delayMs }),
    ...(options.withRunId === undefined ? {} : { withRunId: options.withRunId })
  }),
  status: (
    status: number,
    body: unknown = { detail: `fake status ${status}` },
    headers: Readonly<Record<string, string>> = {}
  ): Behaviour => ({ _tag: "Status", status, body, headers }),
  hangBeforeHeaders: (): Behaviour => ({ _tag: "HangBeforeHeaders" }),
  /** Sends these items (with the run id) and then goes silent. */
  hangAfter: (items: ReadonlyArray<StreamItem>): Behaviour => ({
    _tag: "Stream",
    frames: [...Frames.items(items), Frames.hang]
  }),
  /** Sends these items and then an `event: error` frame. */
  errorEvent: (
    items: ReadonlyArray<StreamItem>,
    error: { errorType?: string; message?: string; detail?: string } = {}
  ): Behaviour => ({
    _tag: "Stream",
    frames: [
      ...Frames.items(items),
      Frames.errorEvent({
        message_type: "error_message",
        error_type: error.errorType ?? "internal_error",
        message: error.message ?? "An error occurred during agent execution",
        ...(error.detail === undefined ? {} : { detail: error.detail })
      })
    ]
  }),
  /** Sends these items and then destroys the socket. */
  dropAfter: (items: ReadonlyArray<StreamItem>): Behaviour => ({
    _tag: "Stream",
    frames: [...Frames.items(items), Frames.drop]
  })
} as const

/** An instant normal run: run id, reasoning, discord_send call + return, assistant text, end_turn, usage. */
export const defaultBehaviour: Behaviour = Behaviours.run()

// --- records -----------------------------------------------------------------

export type RequestKind = "messages" | "cancel" | "agent" | "health" | "other"

export interface ReceivedRequest {
  /** 1-based, in arrival order over all requests. */
  readonly seq: number
  readonly kind: RequestKind
  readonly method: string
  readonly path: string
  readonly query: string
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string>>
  /** Parsed JSON, the raw text when not JSON, undefined when empty. */
  readonly body: unknown
  readonly agentId?: string
  /** The run id the fake gave a messages request. */
  readonly runId?: string
  /** Wall-clock milliseconds. */
  readonly at: number
}

export interface RunRecord {
  readonly runId: string
  readonly agentId: string
  readonly startedAt: number
  readonly finishedAt?: number
  /** "completed" (response ended), "aborted" (connection closed first), "cancelled" (cancel route). */
  readonly outcome?: "completed" | "aborted" | "cancelled"
  /** Names of the tool calls written to the stream so far (what the client may have seen the agent do). */
  readonly toolCallsWritten: ReadonlyArray<string>
  /** The stream's `[DONE]` frame was written: the run reached its end as scripted. */
  readonly doneWritten: boolean
}

export interface CancelRecord {
  readonly agentId: string
  /** Absent when the request had no run_ids (which would cancel every run of the agent). */
  readonly runIds: ReadonlyArray<string> | undefined
}

export interface FakeLettaOptions {
  /** Known agents, id -> name. Unknown agents get 404 (unless a behaviour is scripted for them). */
  readonly agents?: Readonly<Record<string, string>>
  readonly defaultBehaviour?: Behaviour
}

export interface FakeLetta {
  /** Base URL for the client, e.g. http://127.0.0.1:54321 */
  readonly url: string
  readonly requests: Effect.Effect<ReadonlyArray<ReceivedRequest>>
  /** Only `POST /v1/agents/{id}/messages`, optionally of one agent. */
  readonly messageRequests: (agentId?: string) => Effect.Effect<ReadonlyArray<ReceivedRequest>>
  readonly cancels: Effect.Effect<ReadonlyArray<CancelRecord>>
  readonly runs: Effect.Effect<ReadonlyArray<RunRecord>>
  /** Appends behaviours to the agent's queue; each messages request takes the next one. */
  readonly script: (agentId: string, ...behaviours: ReadonlyArray<Behaviour>) => Effect.Effect<void>
  /** What an agent (or every agent, without an id) does when its queue is empty. */
  readonly setDefault: (behaviour: Behaviour, agentId?: string) => Effect.Effect<void>
  readonly addAgent: (agentId: string, name?: string) => Effect.Effect<void>
  /** Status of the cancel route (default 200). */
  readonly setCancelStatus: (status: number) => Effect.Effect<void>
  /** Messages requests of the agent in flight now, and the most ever seen at once. */
  readonly inFlight: (agentId: string) => Effect.Effect<number>
  readonly maxInFlight: (agentId?: string) => Effect.Effect<number>
  /** Waits for the n-th (1-based) request matching `filter` (all requests without one). */
  readonly awaitRequest: (n: number, filter?: (request: ReceivedRequest) => boolean) => Effect.Effect<ReceivedRequest>
  /** Waits for the n-th messages request (of one agent when given). */
  readonly awaitMessages: (n: number, agentId?: string) => Effect.Effect<ReceivedRequest>
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

interface OpenRun {
  readonly record: RunRecord
  readonly res: Http.ServerResponse
}

const agentPath = /^\/v1\/agents\/([^/]+)\/?$/
const messagesPath = /^\/v1\/agents\/([^/]+)\/messages\/?$/
const cancelPath = /^\/v1\/agents\/([^/]+)\/messages\/cancel\/?$/

const sse = (data: unknown, event?: string) => `${event ? `event: ${event}\n` : ""}data: ${JSON.stringify(data)}\n\n`

export const makeFakeLetta = (options: FakeLettaOptions = {}): Effect.Effect<FakeLetta, never, Scope.Scope> =>
  Effect.gen(function* () {
    const agents = new Map<string, string>(Object.entries(options.agents ?? {}))
    const queues = new Map<string, Array<Behaviour>>()
    const agentDefaults = new Map<string, Behaviour>()
    let globalDefault: Behaviour = options.defaultBehaviour ?? defaultBehaviour
    let cancelStatus = 200
    const requests: Array<ReceivedRequest> = []
    const cancels: Array<CancelRecord> = []
    const runs = new Map<string, RunRecord>()
    const open = new Map<string, OpenRun>()
    const inFlight = new Map<string, number>()
    const maxInFlight = new Map<string, number>()
    let inFlightAll = 0
    let maxInFlightAll = 0
    let runCounter = 0
    let itemCounter = 0
    let waiters: Array<Waiter> = []
    let runWaiters: Array<{
      readonly ready: (runs: ReadonlyArray<RunRecord>, requests: ReadonlyArray<ReceivedRequest>) => boolean
      readonly deferred: Deferred.Deferred<ReadonlyArray<RunRecord>>
    }> = []
    const sockets = new Set<Socket>()
    const timers = new Set<NodeJS.Timeout>()

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
      const all = [...runs.values()]
      runWaiters = runWaiters.filter((w) => {
        if (!w.ready(all, requests)) return true
        Deferred.unsafeDone(w.deferred, Exit.succeed(all))
        return false
      })
    }

    const updateRun = (runId: string, f: (run: RunRecord) => RunRecord) => {
      const run = runs.get(runId)
      if (run === undefined) return
      runs.set(runId, f(run))
      wakeRunWaiters()
    }

    const later = (millis: number, f: () => void) => {
      const timer = setTimeout(() => {
        timers.delete(timer)
        f()
      }, millis)
      timers.add(timer)
    }

    const json = (res: Http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
      if (res.destroyed) return
      res.writeHead(status, { "content-type": "application/json", ...headers })
      res.end(body === undefined ? "" : JSON.stringify(body))
    }

    const nextBehaviour = (agentId: string): Behaviour | undefined => {
      const queued = queues.get(agentId)?.shift()
      if (queued !== undefined) return queued
      if (!agents.has(agentId)) return undefined
      return agentDefaults.get(agentId) ?? globalDefault
    }

    const finishRun = (runId: string, outcome: NonNullable<RunRecord["outcome"]>) => {
      const run = runs.get(runId)
      if (run === undefined || run.finishedAt !== undefined) return
      open.delete(runId)
      inFlight.set(run.agentId, (inFlight.get(run.agentId) ?? 1) - 1)
      inFlightAll -= 1
      updateRun(runId, (r) => ({ ...r, finishedAt: Date.now(), outcome }))
    }

    const startRun = (agentId: string, runId: string, res: Http.ServerResponse) => {
      const record: RunRecord = { runId, agentId, startedAt: Date.now(), toolCallsWritten: [], doneWritten: false }
      runs.set(runId, record)
      open.set(runId, { record, res })
      const now = (inFlight.get(agentId) ?? 0) + 1
      inFlight.set(agentId, now)
      maxInFlight.set(agentId, Math.max(maxInFlight.get(agentId) ?? 0, now))
      inFlightAll += 1
      maxInFlightAll = Math.max(maxInFlightAll, inFlightAll)
      res.on("close", () => finishRun(runId, res.writableFinished ? "completed" : "aborted"))
    }

    const fill = (item: Readonly<Record<string, unknown>>, runId: string | undefined): Record<string, unknown> => {
      itemCounter += 1
      return {
        id: `message-${itemCounter}`,
        date: new Date().toISOString(),
        ...(runId === undefined ? {} : { run_id: runId }),
        ...item
      }
    }

    /** Tool names of a tool_call_message item (`tool_calls` list, else the deprecated `tool_call`). */
    const toolNamesOf = (item: StreamItem): ReadonlyArray<string> => {
      if (item.message_type !== "tool_call_message") return []
      const list = Array.isArray(item["tool_calls"]) ? item["tool_calls"] : [item["tool_call"]]
      return list.flatMap((call: unknown) => {
        const name = typeof call === "object" && call !== null ? Reflect.get(call, "name") : undefined
        return typeof name === "string" ? [name] : []
      })
    }

    const writeFrames = (
      res: Http.ServerResponse,
      frames: ReadonlyArray<Frame>,
      runId: string,
      stampRunId: boolean
    ) => {
      const step = (index: number): void => {
        if (res.destroyed || res.writableEnded) return
        const frame = frames[index]
        if (frame === undefined) {
          res.end()
          return
        }
        switch (frame._tag) {
          case "Item": {
            res.write(sse(fill(frame.item, stampRunId ? runId : undefined)))
            const names = toolNamesOf(frame.item)
            if (names.length > 0) updateRun(runId, (r) => ({ ...r, toolCallsWritten: [...r.toolCallsWritten, ...names] }))
            return step(index + 1)
          }
          case "ErrorEvent":
            res.write(sse(fill(frame.data, stampRunId ? runId : undefined), "error"))
            return step(index + 1)
          case "Raw":
            res.write(frame.text)
            return step(index + 1)
          case "Done":
            res.write("data: [DONE]\n\n")
            updateRun(runId, (r) => ({ ...r, doneWritten: true }))
            return step(index + 1)
          case "Pause":
            return later(frame.millis, () => step(index + 1))
          case "Hang":
            return
          case "Drop":
            // end(), not destroy(): a reset could discard frames the client has not read yet.
            res.socket?.end()
            return
        }
      }
      step(0)
    }

    const respondMessages = (agentId: string, runId: string, res: Http.ServerResponse) => {
      const behaviour = nextBehaviour(agentId)
      if (behaviour === undefined) return json(res, 404, { detail: `Agent ${agentId} not found` })
      switch (behaviour._tag) {
        case "HangBeforeHeaders":
          return
        case "Status":
          return later(behaviour.delayMs ?? 0, () => json(res, behaviour.status, behaviour.body, { ...behaviour.headers }))
        case "Stream":
          return later(behaviour.delayMs ?? 0, () => {
            if (res.destroyed) return
            res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
            res.flushHeaders()
            writeFrames(res, behaviour.frames, runId, behaviour.withRunId !== false)
          })
      }
    }

    const respondCancel = (agentId: string, body: unknown, res: Http.ServerResponse) => {
      const raw = typeof body === "object" && body !== null ? Reflect.get(body, "run_ids") : undefined
      const runIds = Array.isArray(raw) ? raw.filter((id): id is string => typeof id === "string") : undefined
      cancels.push({ agentId, runIds })
      if (cancelStatus !== 200) return json(res, cancelStatus, { detail: "fake cancel failure" })
      // Like the server: the cancelled run's stream ends with stop_reason cancelled.
      for (const runId of runIds ?? []) {
        const run = open.get(runId)
        if (run === undefined || run.res.destroyed) continue
        if (run.res.headersSent) {
          run.res.write(sse(fill(Items.stopReason("cancelled"), runId)))
          run.res.write("data: [DONE]\n\n")
        }
        finishRun(runId, "cancelled")
        run.res.end()
      }
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
      const cancel = method === "POST" ? cancelPath.exec(path) : null
      const messages = method === "POST" && cancel === null ? messagesPath.exec(path) : null
      const agent = method === "GET" ? agentPath.exec(path) : null
      const health = method === "GET" && /^\/v1\/health\/?$/.test(path)
      const agentId = decodeURIComponent((cancel ?? messages ?? agent)?.[1] ?? "") || undefined
      const kind: RequestKind = cancel ? "cancel" : messages ? "messages" : agent ? "agent" : health ? "health" : "other"
      const runId = kind === "messages" ? `run-${++runCounter}` : undefined
      requests.push({
        seq: requests.length + 1,
        kind,
        method,
        path,
        query: url.search,
        headers,
        body,
        at: Date.now(),
        ...(agentId === undefined ? {} : { agentId }),
        ...(runId === undefined ? {} : { runId })
      })
      if (kind === "messages" && agentId !== undefined && runId !== undefined) startRun(agentId, runId, res)
      wakeRequestWaiters()

      if (health) return json(res, 200, { status: "ok", version: "fake-letta" })
      if (agent && agentId !== undefined) {
        const name = agents.get(agentId)
        return name === undefined
          ? json(res, 404, { detail: `Agent ${agentId} not found` })
          : json(res, 200, { id: agentId, name, agent_type: "letta_v1_agent" })
      }
      if (cancel && agentId !== undefined) return respondCancel(agentId, body, res)
      if (messages && agentId !== undefined && runId !== undefined) return respondMessages(agentId, runId, res)
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
          for (const timer of timers) clearTimeout(timer)
          timers.clear()
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
    })

    const goOnline = Effect.async<void>((resume) => {
      if (server.listening) return resume(Effect.void)
      server.once("error", (error) => resume(Effect.die(error)))
      server.listen(port, "127.0.0.1", () => resume(Effect.void))
    })

    const awaitRuns = (
      ready: (runs: ReadonlyArray<RunRecord>, requests: ReadonlyArray<ReceivedRequest>) => boolean
    ) =>
      Effect.gen(function* () {
        const deferred = yield* Deferred.make<ReadonlyArray<RunRecord>>()
        runWaiters.push({ ready, deferred })
        wakeRunWaiters()
        return yield* Deferred.await(deferred)
      })

    const awaitRequest = (n: number, filter: (request: ReceivedRequest) => boolean = () => true) =>
      Effect.gen(function* () {
        const deferred = yield* Deferred.make<ReceivedRequest>()
        waiters.push({ n, filter, deferred })
        wakeRequestWaiters()
        return yield* Deferred.await(deferred)
      })

    const isMessages = (agentId?: string) => (r: ReceivedRequest) =>
      r.kind === "messages" && (agentId === undefined || r.agentId === agentId)

    const fake: FakeLetta = {
      url: `http://127.0.0.1:${port}`,
      requests: Effect.sync(() => [...requests]),
      messageRequests: (agentId) => Effect.sync(() => requests.filter(isMessages(agentId))),
      cancels: Effect.sync(() => [...cancels]),
      runs: Effect.sync(() => [...runs.values()]),
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
      inFlight: (agentId) => Effect.sync(() => inFlight.get(agentId) ?? 0),
      maxInFlight: (agentId) =>
        Effect.sync(() => (agentId === undefined ? maxInFlightAll : maxInFlight.get(agentId) ?? 0)),
      awaitRequest,
      awaitMessages: (n, agentId) => awaitRequest(n, isMessages(agentId)),
      awaitRunsFinished: (n) =>
        awaitRuns((all) => all.filter(isFinished).length >= n).pipe(Effect.map((all) => all.filter(isFinished))),
      awaitRuns,
      goOffline,
      goOnline
    }
    return fake
  })

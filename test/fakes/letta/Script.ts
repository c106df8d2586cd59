/**
 * What the fake Letta server streams: items (JSON objects by `message_type`), frames (an item, an
 * `event: error`, raw text, `[DONE]`, a pause, a hang, a dropped connection, something the server
 * does besides the stream such as a tool it runs posting to Discord) and behaviours (what
 * one messages request does: a stream of frames, a status answer, or headers that never come).
 * Tests script behaviours per agent; both the agents route and the conversations route play them.
 * A behaviour that stops for approval (`clientToolCall`, `approvalRequest`) leaves the tool calls
 * pending; the continuation that answers them plays the agent's next behaviour (see Approvals.ts).
 */

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
  /**
   * Something the server does at this point of the run besides streaming: a tool it executes
   * itself, e.g. an MCP server's `discord_send` posting with its own bot account between the
   * `tool_call_message` and the `tool_return_message`. Done whether the client still reads or not.
   */
  | { readonly _tag: "Act"; readonly act: () => void }

/** One tool call: `args` is JSON-encoded unless it is a string already. */
export interface ToolCallSpec {
  readonly name: string
  readonly args?: unknown
  readonly toolCallId: string
}

export type Behaviour =
  | {
    readonly _tag: "Stream"
    readonly frames: ReadonlyArray<Frame>
    /** Milliseconds before the headers. */
    readonly delayMs?: number
    /** false: leave items without a run id. */
    readonly withRunId?: boolean
    /**
     * Client tools this run calls: played only when the request declared them in `client_tools`
     * (else the run ends with stop_reason invalid_tool_call, see Approvals.ts).
     */
    readonly clientTools?: ReadonlyArray<string>
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
  /**
   * The server's request to run tool calls it may not run itself (client tools, or tools that need
   * approval): `tool_calls` lists them all, the deprecated `tool_call` repeats the first.
   */
  approvalRequest: (calls: ReadonlyArray<ToolCallSpec>): StreamItem => {
    const list = calls.map((c) => ({
      name: c.name,
      arguments: typeof c.args === "string" ? c.args : JSON.stringify(c.args ?? {}),
      tool_call_id: c.toolCallId
    }))
    return { message_type: "approval_request_message", tool_call: list[0], tool_calls: list }
  },
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
  drop: { _tag: "Drop" } as Frame,
  act: (act: () => void): Frame => ({ _tag: "Act", act })
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

const listOf = (calls: ToolCallSpec | ReadonlyArray<ToolCallSpec>): ReadonlyArray<ToolCallSpec> =>
  "toolCallId" in calls ? [calls] : calls

const approvalStop = (calls: ReadonlyArray<ToolCallSpec>, items: ReadonlyArray<StreamItem>) => ({
  _tag: "Stream" as const,
  frames: [
    ...Frames.items(items),
    Frames.item(Items.approvalRequest(calls)),
    Frames.item(Items.stopReason("requires_approval")),
    Frames.item(Items.usage()),
    Frames.done
  ]
})

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
  /**
   * A run that calls client tools (declared in the request's `client_tools`): the items, an
   * `approval_request_message` for the calls, stop_reason requires_approval, usage, [DONE].
   */
  clientToolCall: (calls: ToolCallSpec | ReadonlyArray<ToolCallSpec>, items: ReadonlyArray<StreamItem> = []): Behaviour => {
    const list = listOf(calls)
    return { ...approvalStop(list, items), clientTools: list.map((call) => call.name) }
  },
  /** A run that asks approval for server tools (marked requires_approval): the same stop, any tool name. */
  approvalRequest: (calls: ToolCallSpec | ReadonlyArray<ToolCallSpec>, items: ReadonlyArray<StreamItem> = []): Behaviour =>
    approvalStop(listOf(calls), items),
  /** Sends these items and then destroys the socket. */
  dropAfter: (items: ReadonlyArray<StreamItem>): Behaviour => ({
    _tag: "Stream",
    frames: [...Frames.items(items), Frames.drop]
  })
} as const

/** An instant normal run: run id, reasoning, discord_send call + return, assistant text, end_turn, usage. */
export const defaultBehaviour: Behaviour = Behaviours.run()

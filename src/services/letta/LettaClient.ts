/**
 * The Letta server Aurora talks to: which URL (LettaEndpoint) and the official client for it
 * (LettaClient), plus the classification of the client's exceptions into Aurora's typed errors.
 */
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
  Letta
} from "@letta-ai/letta-client"
import { Clock, Duration, Effect, Option, Redacted, Ref } from "effect"
import { AuroraConfig } from "../../domain/Config.js"
import {
  AgentBusy,
  AgentNotFound,
  LettaConnectionError,
  LettaRateLimited,
  LettaRejected,
  LettaServerError,
  LettaTimeout,
  LettaUnauthorized,
  type LettaRunError,
  RunFailed
} from "../../domain/LettaErrors.js"

export const defaultLettaBaseUrl = "https://api.letta.com"

export type LettaUrlSource = "override" | "env" | "default"

export interface LettaUrl {
  readonly url: string
  readonly source: LettaUrlSource
}

/**
 * The base URL in use. The override is set at run time by the owner's `lettaurl` command (and by
 * start-up from the persisted setting); it wins over LETTA_BASE_URL.
 */
export class LettaEndpoint extends Effect.Service<LettaEndpoint>()("aurora/LettaEndpoint", {
  effect: Effect.gen(function* () {
    const envUrl = (yield* AuroraConfig).letta.baseUrl
    const override = yield* Ref.make<string | null>(null)

    const current: Effect.Effect<LettaUrl> = Effect.map(Ref.get(override), (url): LettaUrl => {
      if (url !== null) return { url, source: "override" }
      if (Option.isSome(envUrl)) return { url: envUrl.value, source: "env" }
      return { url: defaultLettaBaseUrl, source: "default" }
    })

    /** `null` drops the override. The URL is checked (http/https) by the command, not here. */
    const setOverride = (url: string | null): Effect.Effect<void> => Ref.set(override, url)

    return { current, setOverride } as const
  })
}) {}

/** Wait for response headers when the caller gives no timeout of its own. */
const defaultHeadersTimeout = Duration.seconds(60)
const lookupTimeout = Duration.seconds(10)
/** A cancel is best effort and must not hold up a timeout or a shutdown. */
export const cancelTimeout = Duration.seconds(5)

export interface LettaClientHandle extends LettaUrl {
  readonly client: Letta
}

export type LettaHealth =
  | (LettaUrl & { readonly _tag: "Reachable"; readonly version: string; readonly status: string })
  | (LettaUrl & { readonly _tag: "Unreachable"; readonly reason: string })

/** What a failure is classified against: the run as far as it got. */
export interface FailureContext {
  readonly agentId: string
  readonly runId?: string | undefined
  readonly sideEffect: boolean
  /** The bound that applied, reported in LettaTimeout. */
  readonly timeout: Duration.Duration
  /** Removes secrets from text that will end up in an error message. */
  readonly redact: (text: string) => string
}

const errorText = (cause: unknown): string => {
  if (cause instanceof Error) return cause.message
  return typeof cause === "string" ? cause : JSON.stringify(cause) ?? String(cause)
}

const bodyText = (body: unknown): string => (body === undefined ? "" : JSON.stringify(body) ?? "")

const bodyField = (body: unknown, key: string): string | undefined => {
  if (typeof body !== "object" || body === null || !(key in body)) return undefined
  const value: unknown = Reflect.get(body, key)
  return typeof value === "string" ? value : undefined
}

/** Longest Retry-After honoured: a server asking for more is treated as asking for this. */
export const maxRetryAfter = Duration.minutes(5)

/**
 * Reads `retry-after-ms` (milliseconds) or `Retry-After` (seconds, or an HTTP date relative to
 * `nowMs`). Unparseable or absent -> undefined; negative -> zero; capped at `maxRetryAfter`.
 */
export const parseRetryAfter = (
  headers: { readonly get: (name: string) => string | null } | undefined,
  nowMs: number
): Duration.Duration | undefined => {
  if (headers === undefined) return undefined
  const clamp = (ms: number) => Duration.min(Duration.millis(Math.max(0, ms)), maxRetryAfter)
  const ms = headers.get("retry-after-ms")
  if (ms !== null && ms.trim() !== "" && Number.isFinite(Number(ms))) return clamp(Number(ms))
  const value = headers.get("retry-after")
  if (value === null || value.trim() === "") return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return clamp(seconds * 1000)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : clamp(date - nowMs)
}

/**
 * Maps whatever the Letta client threw to Aurora's typed errors. `phase` is where the run was
 * when it happened (the client's own timeout only ever covers the headers).
 */
export const classifyClientError = (
  cause: unknown,
  context: FailureContext & { readonly phase: "headers" | "stream" }
): Effect.Effect<LettaRunError> =>
  Effect.gen(function* () {
    const base = {
      agentId: context.agentId,
      runId: context.runId,
      sideEffect: context.sideEffect
    }
    const reason = context.redact(errorText(cause))
    if (cause instanceof APIConnectionTimeoutError) {
      return new LettaTimeout({ ...base, reason, timeout: context.timeout, phase: "headers" })
    }
    if (cause instanceof APIConnectionError || cause instanceof APIUserAbortError) {
      return new LettaConnectionError({ ...base, reason })
    }
    if (!(cause instanceof APIError)) {
      // Raw fetch/body errors (a socket closed mid-stream surfaces as "terminated").
      return new LettaConnectionError({ ...base, reason })
    }
    const status = cause.status
    if (status === undefined) {
      // An `event: error` frame: the client throws an APIError without a status, the frame's
      // JSON (an error_message) as its body.
      const runId = base.runId ?? bodyField(cause.error, "run_id")
      const message = bodyField(cause.error, "message") ?? bodyField(cause.error, "detail") ?? reason
      return new RunFailed({
        ...base,
        runId,
        reason: context.redact(message),
        errorType: bodyField(cause.error, "error_type")
      })
    }
    if (status === 404) return new AgentNotFound({ ...base, reason })
    if (status === 408) return new LettaTimeout({ ...base, reason, timeout: context.timeout, phase: "server" })
    if (status === 429) {
      const now = yield* Clock.currentTimeMillis
      return new LettaRateLimited({ ...base, reason, retryAfter: parseRetryAfter(cause.headers, now) })
    }
    if (status === 409) {
      const pendingApproval = /approval/i.test(`${cause.message} ${bodyText(cause.error)}`)
      return new AgentBusy({ ...base, reason, pendingApproval })
    }
    if (status === 401 || status === 403) return new LettaUnauthorized({ ...base, reason, status })
    if (status >= 500) return new LettaServerError({ ...base, reason, status })
    // 400, 422 and any other refusal of the request itself.
    return new LettaRejected({ ...base, reason, status })
  })

/**
 * The official client for the URL in use, rebuilt (once) when the URL changes, so a `lettaurl`
 * change applies to the next run without a restart. `maxRetries: 0` is essential: the client's
 * own retries would re-send a streamed prompt and duplicate an agent turn; Effect owns retries.
 */
export class LettaClient extends Effect.Service<LettaClient>()("aurora/LettaClient", {
  effect: Effect.gen(function* () {
    const endpoint = yield* LettaEndpoint
    // Self-hosted servers need no key (a blank LETTA_API_KEY reads as none).
    const apiKey = (yield* AuroraConfig).letta.apiKey
    const cache = yield* Ref.make<Option.Option<LettaClientHandle>>(Option.none())

    const build = (at: LettaUrl): LettaClientHandle => ({
      ...at,
      client: new Letta({
        baseURL: at.url,
        // null, not undefined: undefined would make the client read LETTA_API_KEY itself.
        apiKey: Option.match(apiKey, { onNone: () => null, onSome: Redacted.value }),
        maxRetries: 0,
        timeout: Duration.toMillis(defaultHeadersTimeout),
        // Failures reach us as exceptions and are logged by Aurora; keep the client off stdout.
        logLevel: "off"
      })
    })

    const current: Effect.Effect<LettaClientHandle> = Effect.flatMap(endpoint.current, (at) =>
      Ref.modify(cache, (cached): [LettaClientHandle, Option.Option<LettaClientHandle>] => {
        if (Option.isSome(cached) && cached.value.url === at.url) {
          const handle = { ...cached.value, source: at.source }
          return [handle, Option.some(handle)]
        }
        const handle = build(at)
        return [handle, Option.some(handle)]
      })
    )

    /** Removes the API key from text bound for an error message or a log line. */
    const redact = (text: string): string =>
      Option.match(apiKey, {
        onNone: () => text,
        onSome: (key) => text.split(Redacted.value(key)).join("<redacted>")
      })

    const lookupContext = (agentId: string): FailureContext & { readonly phase: "headers" } => ({
      agentId,
      sideEffect: false,
      timeout: lookupTimeout,
      redact,
      phase: "headers"
    })

    /** GET /v1/agents/{id}: the check behind `enable` and `dm enable`. */
    const retrieveAgent = (agentId: string) =>
      Effect.gen(function* () {
        const { client } = yield* current
        const agent = yield* Effect.tryPromise({
          try: (signal) =>
            client.agents.retrieve(agentId, null, { signal, timeout: Duration.toMillis(lookupTimeout) }),
          catch: (cause) => cause
        }).pipe(
          Effect.timeoutFail({
            duration: lookupTimeout,
            onTimeout: () =>
              new APIConnectionTimeoutError({ message: `no answer within ${Duration.format(lookupTimeout)}` })
          }),
          Effect.catchAll((cause) => Effect.flip(classifyClientError(cause, lookupContext(agentId))))
        )
        return { id: agent.id, name: agent.name }
      }).pipe(Effect.withSpan("LettaClient.retrieveAgent", { attributes: { agentId } }))

    /** GET /v1/health/: never fails, says what went wrong instead. */
    const health: Effect.Effect<LettaHealth> = Effect.gen(function* () {
      const handle = yield* current
      const at: LettaUrl = { url: handle.url, source: handle.source }
      return yield* Effect.tryPromise({
        try: (signal) => handle.client.health({ signal, timeout: Duration.toMillis(lookupTimeout) }),
        catch: (cause) => cause
      }).pipe(
        Effect.timeoutFail({ duration: lookupTimeout, onTimeout: () => "no answer in time" }),
        Effect.match({
          onSuccess: (body): LettaHealth => ({ ...at, _tag: "Reachable", version: body.version, status: body.status }),
          onFailure: (cause): LettaHealth => ({ ...at, _tag: "Unreachable", reason: redact(errorText(cause)) })
        })
      )
    })

    /**
     * Cancels one run on the server, best effort: bounded by `cancelTimeout`, failures logged at
     * warning, never failing. Always with `run_ids`: a cancel without them would stop every run of
     * the agent, other clients' included. Returns whether the server accepted it.
     */
    const cancelRun = (agentId: string, runId: string): Effect.Effect<boolean> =>
      Effect.gen(function* () {
        const { client } = yield* current
        yield* Effect.tryPromise({
          try: (signal) =>
            client.agents.messages.cancel(
              agentId,
              { run_ids: [runId] },
              { signal, timeout: Duration.toMillis(cancelTimeout) }
            ),
          catch: (cause) => redact(errorText(cause))
        }).pipe(Effect.timeoutFail({ duration: cancelTimeout, onTimeout: () => "no answer in time" }))
        yield* Effect.logInfo("run cancelled on the Letta server")
        return true
      }).pipe(
        Effect.catchAll((reason) =>
          Effect.as(Effect.logWarning("could not cancel the run on the Letta server").pipe(
            Effect.annotateLogs({ reason })
          ), false)
        ),
        Effect.annotateLogs({ agentId, runId }),
        Effect.withSpan("LettaClient.cancelRun", { attributes: { agentId, runId } })
      )

    return { current, retrieveAgent, health, cancelRun, redact } as const
  })
}) {}

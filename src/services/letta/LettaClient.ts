/**
 * The Letta server Aurora talks to: which URL (LettaEndpoint) and the official client for it
 * (LettaClient). The classification of the client's exceptions into Aurora's typed errors is in
 * ClientErrors.ts, re-exported here.
 */
import { APIConnectionTimeoutError, Letta } from "@letta-ai/letta-client"
import { Duration, Effect, Option, Redacted, Ref } from "effect"
import { AuroraConfig } from "../../domain/Config.js"
import type { LettaRunError } from "../../domain/LettaErrors.js"
import { shownUrl } from "../../domain/ShownUrl.js"
import { latencyTraceOn, tracedFetch } from "../health/LatencyTrace.js"
import { classifyClientError, errorText, type FailureContext } from "./ClientErrors.js"

export { classifyClientError, type FailureContext, maxRetryAfter, parseRetryAfter } from "./ClientErrors.js"

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
  effect: Effect.gen(function*() {
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

/** `//user:password@` (or `//user@`) in a URL quoted in text. */
const urlCredentials = /\/\/[^/\s@]+@/g

/** Wait for response headers when the caller gives no timeout of its own. */
const defaultHeadersTimeout = Duration.seconds(60)
const lookupTimeout = Duration.seconds(10)
/** A cancel is best effort and must not hold up a timeout or a shutdown. */
export const cancelTimeout = Duration.seconds(5)

export interface LettaClientHandle extends LettaUrl {
  readonly client: Letta
  /** The URL as logs show it (ShownUrl: no credentials), worked out once per client. */
  readonly shownUrl: string
}

export type LettaHealth =
  | (LettaUrl & { readonly _tag: "Reachable"; readonly version: string; readonly status: string })
  | (LettaUrl & { readonly _tag: "Unreachable"; readonly reason: string })

/**
 * The official client for the URL in use, rebuilt (once) when the URL changes, so a `lettaurl`
 * change applies to the next run without a restart. `maxRetries: 0` is essential: the client's
 * own retries would re-send a streamed prompt and duplicate an agent turn; Effect owns retries.
 */
export class LettaClient extends Effect.Service<LettaClient>()("aurora/LettaClient", {
  effect: Effect.gen(function*() {
    const endpoint = yield* LettaEndpoint
    // Self-hosted servers need no key (a blank LETTA_API_KEY reads as none).
    const apiKey = (yield* AuroraConfig).letta.apiKey
    const cache = yield* Ref.make<Option.Option<LettaClientHandle>>(Option.none())

    const build = (at: LettaUrl): LettaClientHandle => ({
      ...at,
      shownUrl: shownUrl(at.url),
      client: new Letta({
        baseURL: at.url,
        // null, not undefined: undefined would make the client read LETTA_API_KEY itself.
        apiKey: Option.match(apiKey, { onNone: () => null, onSome: Redacted.value }),
        maxRetries: 0,
        timeout: Duration.toMillis(defaultHeadersTimeout),
        // Failures reach us as exceptions and are logged by Aurora; keep the client off stdout.
        logLevel: "off",
        ...(latencyTraceOn ? { fetch: tracedFetch } : {})
      })
    })

    const current: Effect.Effect<LettaClientHandle> = Effect.flatMap(
      endpoint.current,
      (at) =>
        Ref.modify(cache, (cached): [LettaClientHandle, Option.Option<LettaClientHandle>] => {
          if (Option.isSome(cached) && cached.value.url === at.url) {
            const handle = { ...cached.value, source: at.source }
            return [handle, Option.some(handle)]
          }
          const handle = build(at)
          return [handle, Option.some(handle)]
        })
    )

    /**
     * Removes the API key, and any URL credentials (`//user:password@`, which LETTA_BASE_URL may
     * carry and a connection error may quote), from text bound for an error message or a log line.
     */
    const redact = (text: string): string => {
      const withoutKey = Option.match(apiKey, {
        onNone: () => text,
        onSome: (key) => text.split(Redacted.value(key)).join("<redacted>")
      })
      return withoutKey.replace(urlCredentials, "//redacted@")
    }

    const lookupContext = (agentId: string): FailureContext & { readonly phase: "headers" } => ({
      agentId,
      sideEffect: false,
      timeout: lookupTimeout,
      redact,
      phase: "headers"
    })

    /** GET /v1/agents/{id}: the check behind `enable` and `dm enable`. */
    const retrieveAgent = (agentId: string) =>
      Effect.gen(function*() {
        const { client } = yield* current
        const agent = yield* Effect.tryPromise({
          try: (signal) => client.agents.retrieve(agentId, null, { signal, timeout: Duration.toMillis(lookupTimeout) }),
          catch: (cause) => cause
        }).pipe(
          Effect.timeoutFail({
            duration: lookupTimeout,
            onTimeout: () => new APIConnectionTimeoutError({ message: `no answer within ${Duration.format(lookupTimeout)}` })
          }),
          Effect.catchAll((cause) => Effect.flip(classifyClientError(cause, lookupContext(agentId))))
        )
        return { id: agent.id, name: agent.name }
      }).pipe(Effect.withSpan("LettaClient.retrieveAgent", { attributes: { agentId } }))

    /**
     * POST /v1/conversations/?agent_id=: a new conversation on the agent, its id. Bounded like
     * `retrieveAgent`; a 404 is `AgentNotFound` (the agent is gone). A create that times out may
     * still have happened on the server: that conversation is simply never used.
     */
    const createConversation = (agentId: string, description: string): Effect.Effect<string, LettaRunError> =>
      Effect.gen(function*() {
        const { client } = yield* current
        const conversation = yield* Effect.tryPromise({
          try: (signal) =>
            client.conversations.create(
              { agent_id: agentId, description },
              { signal, timeout: Duration.toMillis(lookupTimeout) }
            ),
          catch: (cause) => cause
        }).pipe(
          Effect.timeoutFail({
            duration: lookupTimeout,
            onTimeout: () => new APIConnectionTimeoutError({ message: `no answer within ${Duration.format(lookupTimeout)}` })
          }),
          Effect.catchAll((cause) => Effect.flip(classifyClientError(cause, lookupContext(agentId))))
        )
        yield* Effect.logInfo("conversation created on the Letta server").pipe(
          Effect.annotateLogs({ conversationId: conversation.id })
        )
        return conversation.id
      }).pipe(
        Effect.annotateLogs({ agentId }),
        Effect.withSpan("LettaClient.createConversation", { attributes: { agentId } })
      )

    /** GET /v1/health/: never fails, says what went wrong instead. */
    const health: Effect.Effect<LettaHealth> = Effect.gen(function*() {
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
    /**
     * One cancel request, best effort: bounded by `cancelTimeout`, a failure logged at warning
     * ("could not cancel the <what> on the Letta server"), never failing. True when the server accepted it.
     */
    const bestEffortCancel = (
      what: string,
      send: (client: Letta, signal: AbortSignal) => Promise<unknown>,
      annotations: Readonly<Record<string, string>>,
      span: string
    ): Effect.Effect<boolean> =>
      Effect.gen(function*() {
        const { client } = yield* current
        yield* Effect.tryPromise({ try: (signal) => send(client, signal), catch: (cause) => redact(errorText(cause)) }).pipe(
          Effect.timeoutFail({ duration: cancelTimeout, onTimeout: () => "no answer in time" })
        )
        yield* Effect.logInfo(`${what} cancelled on the Letta server`)
        return true
      }).pipe(
        Effect.catchAll((reason) =>
          Effect.as(
            Effect.logWarning(`could not cancel the ${what} on the Letta server`).pipe(Effect.annotateLogs({ reason })),
            false
          )
        ),
        Effect.annotateLogs(annotations),
        Effect.withSpan(span, { attributes: annotations })
      )

    const cancelRun = (agentId: string, runId: string): Effect.Effect<boolean> =>
      bestEffortCancel(
        "run",
        (client, signal) =>
          client.agents.messages.cancel(agentId, { run_ids: [runId] }, { signal, timeout: Duration.toMillis(cancelTimeout) }),
        { agentId, runId },
        "LettaClient.cancelRun"
      )

    /**
     * Cancels the runs of one conversation (POST /v1/conversations/{id}/cancel), best effort like
     * `cancelRun`. No run ids are needed: in `channel` mode the conversation is Aurora's own.
     */
    const cancelConversation = (conversationId: string): Effect.Effect<boolean> =>
      bestEffortCancel(
        "conversation's runs",
        (client, signal) =>
          client.conversations.cancel(conversationId, null, { signal, timeout: Duration.toMillis(cancelTimeout) }),
        { conversationId },
        "LettaClient.cancelConversation"
      )

    return { current, retrieveAgent, createConversation, health, cancelRun, cancelConversation, redact } as const
  })
}) {}

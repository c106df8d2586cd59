/**
 * Aurora's configuration: every environment variable it reads, described here and nowhere else.
 * `AuroraConfig.Default` reads them all once, at start-up (src/layers/Live.ts provides it to the
 * whole graph); services and programs read their values from the `AuroraConfig` service.
 *
 * A missing or bad value stops the start with one line per variable, e.g.
 * `aurora: AURORA_HTTP_PORT is invalid: Expected a network port value but received "http"`
 * (src/layers/Startup.ts), exit code 1. The secrets are `Redacted`: they print as `<redacted>` and
 * never reach a log line, an error or a reply.
 *
 * The comment on each variable is its reference (default, accepted values, meaning); README's
 * Configuration table reproduces them.
 */
import { Config, ConfigError, Duration, Effect, Either, LogLevel, Option, Redacted } from "effect"
import { isSnowflake } from "./Snowflake.js"
import { shownUrl } from "./ShownUrl.js"

// --- how values are checked ------------------------------------------------------------------

/** Blank text reads as unset, so `Config.option` / `Config.withDefault` apply to it. */
const unsetIfBlank = (text: string): Either.Either<string, ConfigError.ConfigError> =>
  text.trim() === "" ? Either.left(ConfigError.MissingData([], "blank")) : Either.right(text.trim())

/** The variable's text, trimmed and checked by `parse` (which says what it expected); blank is unset. */
const checked = <A>(name: string, parse: (text: string) => Either.Either<A, string>): Config.Config<A> =>
  Config.nested(
    Config.string().pipe(
      Config.mapOrFail((text) =>
        Either.flatMap(unsetIfBlank(text), (trimmed) =>
          Either.mapLeft(parse(trimmed), (reason) => ConfigError.InvalidData([], reason)))
      )
    ),
    name
  )

const httpUrl = (text: string): Either.Either<string, string> => {
  const url = URL.canParse(text) ? new URL(text) : null
  return url !== null && (url.protocol === "http:" || url.protocol === "https:")
    ? Either.right(text)
    : Either.left(`expected an http:// or https:// URL, got ${JSON.stringify(shownUrl(text))}`)
}

const integerIn = (min: number, max: number) => (text: string): Either.Either<number, string> => {
  const n = Number(text)
  return /^\d+$/.test(text) && n >= min && n <= max
    ? Either.right(n)
    : Either.left(`expected an integer from ${min} to ${max}, got ${JSON.stringify(text)}`)
}

// --- Discord ---------------------------------------------------------------------------------

/** `DISCORD_TOKEN` (required): the bot token; missing or blank: one line naming it, exit code 1. */
const discordToken: Config.Config<Redacted.Redacted<string>> = Config.nested(
  Config.redacted().pipe(
    Config.mapOrFail((token) =>
      Redacted.value(token).trim() === "" ? Either.left(ConfigError.MissingData([], "blank")) : Either.right(token)
    )
  ),
  "DISCORD_TOKEN"
)

/**
 * `DISCORD_API_URL` (default: Discord's): the REST base, e.g. `http://127.0.0.1:9000/api`, for a
 * REST proxy such as @discordjs/proxy, a Discord-compatible server, the test fakes. The gateway
 * URL comes from `GET /gateway/bot`.
 */
const discordApiUrl = Config.option(checked("DISCORD_API_URL", httpUrl))

/** `AURORA_DISCORD_READY_TIMEOUT` (default `30 seconds`): how long start-up waits for the gateway to be ready. */
const discordReadyTimeout = Config.duration("AURORA_DISCORD_READY_TIMEOUT").pipe(
  Config.withDefault(Duration.seconds(30))
)

/**
 * `AURORA_SHARD_COUNT` (default `auto`): gateway shards in this process: `auto` asks Discord
 * (`GET /gateway/bot`), a positive integer pins the count.
 */
const shardCount: Config.Config<number | "auto"> = checked(
  "AURORA_SHARD_COUNT",
  (text): Either.Either<number | "auto", string> =>
    text === "auto"
      ? Either.right("auto")
      : Either.mapLeft(
        integerIn(1, Number.MAX_SAFE_INTEGER)(text),
        () => `expected auto or a positive integer, got ${JSON.stringify(text)}`
      )
).pipe(Config.withDefault("auto" as const))

/** `AURORA_COMMAND_GUILD_ID` (default unset): also register `/aurora` on this guild (instant updates while developing). */
const commandGuildId = Config.option(
  checked(
    "AURORA_COMMAND_GUILD_ID",
    (text) => isSnowflake(text) ? Either.right(text) : Either.left(`expected a Discord guild id, got ${JSON.stringify(text)}`)
  )
)

/**
 * `AURORA_OWNER_IDS` (default: the application's owner or team): comma-separated Discord user ids
 * allowed to run owner-only commands, and told of error-rate alerts; entries that are not user ids
 * are skipped (logged at start-up, by the commands).
 */
export const ownerIds: Config.Config<OwnerIds> = Config.array(Config.string(), "AURORA_OWNER_IDS").pipe(
  Config.withDefault([]),
  Config.map((entries) => {
    const given = entries.map((entry) => entry.trim()).filter((entry) => entry !== "")
    return { ids: given.filter(isSnowflake), ignored: given.filter((entry) => !isSnowflake(entry)) }
  })
)

// --- Letta -----------------------------------------------------------------------------------

/**
 * `LETTA_BASE_URL` (default `https://api.letta.com`): the Letta server; `/aurora lettaurl`
 * overrides it at run time (persisted, wins over this).
 */
const lettaBaseUrl = Config.option(checked("LETTA_BASE_URL", httpUrl))

/** `LETTA_API_KEY` (default none): the Letta key (self-hosted servers may need none). */
const lettaApiKey = Config.option(Config.redacted("LETTA_API_KEY")).pipe(
  Config.map(Option.filter((key) => Redacted.value(key).trim() !== ""))
)

// --- storage, queue, shutdown ----------------------------------------------------------------

/**
 * `AURORA_DATA_DIR` (default `./data`): where the SQLite database `aurora.db` lives (settings,
 * pending events, dead letters); created if missing; one process per directory.
 */
const dataDir = Config.string("AURORA_DATA_DIR").pipe(Config.withDefault("./data"))

/**
 * `AURORA_MAX_CONCURRENT_RUNS` (default 64, 1–1024): agent runs in flight at once, all agents
 * together (one run per agent still holds). Runs are network-bound streams, so the default is well
 * above the number of agents a deployment usually serves.
 */
const maxConcurrentRuns = checked("AURORA_MAX_CONCURRENT_RUNS", integerIn(1, 1024)).pipe(Config.withDefault(64))

/**
 * `AURORA_MAX_EVENT_AGE` (default `1 hour`): pending events older than this are not sent: not
 * replayed after a restart, nor dispatched when their turn comes, e.g. after a long pause (dead
 * letter `expired`).
 */
const maxEventAge = Config.duration("AURORA_MAX_EVENT_AGE").pipe(Config.withDefault(Duration.hours(1)))

/** `AURORA_SHUTDOWN_GRACE` (default `30 seconds`): how long runs in flight may finish on SIGTERM/SIGINT. */
const shutdownGrace = Config.duration("AURORA_SHUTDOWN_GRACE").pipe(Config.withDefault(Duration.seconds(30)))

// --- operator endpoints and logs -------------------------------------------------------------

/**
 * `AURORA_HTTP_PORT` (default unset = off): serves `GET /healthz` and `GET /metrics`;
 * `AURORA_HTTP_HOST` (default `127.0.0.1`): the address of that endpoint.
 */
export const httpEndpoint: Config.Config<Option.Option<HttpEndpoint>> = Config.all({
  port: Config.option(Config.port("AURORA_HTTP_PORT")),
  host: Config.string("AURORA_HTTP_HOST").pipe(Config.withDefault("127.0.0.1"))
}).pipe(Config.map(({ host, port }) => Option.map(port, (port): HttpEndpoint => ({ port, host }))))

const levels = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  warn: LogLevel.Warning,
  error: LogLevel.Error
} as const

/** `LOG_LEVEL` (default `info`): `debug`, `info`, `warning`, `error`. */
export const logLevel: Config.Config<LogLevel.LogLevel> = Config.literal(
  ...(Object.keys(levels) as Array<keyof typeof levels>)
)("LOG_LEVEL").pipe(Config.withDefault("info" as const), Config.map((name) => levels[name]))

/**
 * `LOG_FORMAT` (default `pretty` on a terminal, else `json`): `json` is one object per line with
 * `timestamp`, `level`, `message`, the annotations (`guildId`, `channelId`, `messageId`, `agentId`,
 * `runId`), `spans` and `cause`. None: decided by the terminal (src/layers/Logging.ts).
 */
const logFormat = Config.option(Config.literal("pretty", "json")("LOG_FORMAT"))

// --- the record ------------------------------------------------------------------------------

export interface OwnerIds {
  /** The user ids, in the order given. */
  readonly ids: ReadonlyArray<string>
  /** Entries that are not user ids (skipped). */
  readonly ignored: ReadonlyArray<string>
}

export interface HttpEndpoint {
  readonly port: number
  readonly host: string
}

export type LogFormat = "pretty" | "json"

export interface AuroraConfigShape {
  readonly discord: {
    readonly token: Redacted.Redacted<string>
    readonly apiUrl: Option.Option<string>
    readonly readyTimeout: Duration.Duration
    readonly shardCount: number | "auto"
  }
  readonly commandGuildId: Option.Option<string>
  readonly owners: OwnerIds
  readonly letta: {
    readonly baseUrl: Option.Option<string>
    readonly apiKey: Option.Option<Redacted.Redacted<string>>
  }
  readonly dataDir: string
  readonly maxConcurrentRuns: number
  readonly maxEventAge: Duration.Duration
  readonly shutdownGrace: Duration.Duration
  readonly http: Option.Option<HttpEndpoint>
  readonly log: { readonly level: LogLevel.LogLevel; readonly format: Option.Option<LogFormat> }
}

/** Every variable; a failure lists every bad one (ConfigError `And`), in this order. */
export const auroraConfig: Config.Config<AuroraConfigShape> = Config.all({
  discord: Config.all({
    token: discordToken,
    apiUrl: discordApiUrl,
    readyTimeout: discordReadyTimeout,
    shardCount
  }),
  commandGuildId,
  owners: ownerIds,
  letta: Config.all({ baseUrl: lettaBaseUrl, apiKey: lettaApiKey }),
  dataDir,
  maxConcurrentRuns,
  maxEventAge,
  shutdownGrace,
  http: httpEndpoint,
  log: Config.all({ level: logLevel, format: logFormat })
})

/** The configuration, read once from the environment (the ConfigProvider) when the layer is built. */
export class AuroraConfig extends Effect.Service<AuroraConfig>()("aurora/AuroraConfig", {
  effect: auroraConfig
}) {}

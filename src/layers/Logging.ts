/**
 * Logging for operators: pretty lines on a terminal, one JSON object per line otherwise
 * (`LOG_FORMAT` = pretty | json), filtered by `LOG_LEVEL` (debug, info, warning, error).
 * JSON lines carry `timestamp`, `level`, `message`, the log annotations (guild, channel, message,
 * agent and run ids) flattened, the open spans with their durations, and the cause when there is one.
 */
import { Cause, Config, Effect, FiberRef, HashMap, Layer, List, Logger, LogLevel } from "effect"

const levels = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  warn: LogLevel.Warning,
  error: LogLevel.Error
} as const

export const LogLevelConfig = Config.literal(...(Object.keys(levels) as Array<keyof typeof levels>))("LOG_LEVEL").pipe(
  Config.withDefault("info" as const),
  Config.map((name) => levels[name])
)

export const LogFormatConfig = Config.literal("pretty", "json")("LOG_FORMAT").pipe(
  Config.orElse(() => Config.succeed(process.stdout.isTTY ? ("pretty" as const) : ("json" as const)))
)

const levelName = (level: LogLevel.LogLevel): string =>
  level._tag === "Warning" ? "warning" : level.label.toLowerCase()

const messageText = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((part) => (typeof part === "string" ? part : safeJson(part))).join(" ")
}

const safeJson = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/** One JSON object per line, flat enough for `jq` and log shippers. */
export const jsonLineLogger = Logger.make<unknown, string>(({ annotations, cause, date, logLevel, message, spans }) => {
  const line: Record<string, unknown> = {
    timestamp: date.toISOString(),
    level: levelName(logLevel),
    message: messageText(message)
  }
  for (const [key, value] of HashMap.toEntries(annotations)) {
    if (!(key in line)) line[key] = value
  }
  const now = date.getTime()
  const openSpans = List.toArray(spans)
  if (openSpans.length > 0) {
    line["spans"] = Object.fromEntries(openSpans.map((span) => [span.label, now - span.startTime]))
  }
  if (!Cause.isEmpty(cause)) line["cause"] = Cause.pretty(cause, { renderErrorCause: true })
  return safeJson(line)
})

const jsonLayer = Logger.replace(
  Logger.defaultLogger,
  jsonLineLogger.pipe(Logger.map((line) => process.stdout.write(line + "\n")))
)

/**
 * One log line with annotations of its own. `Effect.annotateLogs` around a line changes a FiberRef
 * before the logger filters the line by level, so a filtered-out debug line would still pay for
 * its annotations; here they are only built for a line that is written.
 */
export const logAnnotated = (
  level: LogLevel.LogLevel,
  message: string,
  annotations: Readonly<Record<string, unknown>>
): Effect.Effect<void> =>
  Effect.flatMap(FiberRef.get(FiberRef.currentMinimumLogLevel), (minimum) =>
    LogLevel.greaterThan(minimum, level)
      ? Effect.void
      : Effect.annotateLogs(Effect.logWithLevel(level, message), annotations))

export const LoggingLive = Layer.unwrapEffect(
  Effect.gen(function* () {
    const level = yield* LogLevelConfig
    const format = yield* LogFormatConfig
    const logger = format === "json" ? jsonLayer : Logger.pretty
    return Layer.merge(logger, Logger.minimumLogLevel(level))
  })
)

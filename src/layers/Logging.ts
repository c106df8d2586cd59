/**
 * Logging for operators: pretty lines on a terminal, one JSON object per line otherwise
 * (`LOG_FORMAT` = pretty | json), filtered by `LOG_LEVEL` (debug, info, warning, error).
 * JSON lines carry `timestamp`, `level`, `message`, the log annotations (guild, channel, message,
 * agent and run ids) flattened, the open spans with their durations, and the cause when there is one.
 */
import { Config, Effect, Layer, Logger, LogLevel } from "effect"
import { jsonLineLogger } from "../services/health/Log.js"

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

const jsonLayer = Logger.replace(
  Logger.defaultLogger,
  jsonLineLogger.pipe(Logger.map((line) => process.stdout.write(line + "\n")))
)

export const LoggingLive = Layer.unwrapEffect(
  Effect.gen(function* () {
    const level = yield* LogLevelConfig
    const format = yield* LogFormatConfig
    const logger = format === "json" ? jsonLayer : Logger.pretty
    return Layer.merge(logger, Logger.minimumLogLevel(level))
  })
)

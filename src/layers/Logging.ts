/**
 * Logging for operators: pretty lines on a terminal, one JSON object per line otherwise
 * (`LOG_FORMAT` = pretty | json), filtered by `LOG_LEVEL` (debug, info, warning, error).
 * JSON lines carry `timestamp`, `level`, `message`, the log annotations (guild, channel, message,
 * agent and run ids) flattened, the open spans with their durations, and the cause when there is one.
 */
import { Effect, Layer, Logger, Option } from "effect"
import { AuroraConfig } from "../domain/Config.js"
import { jsonLineLogger } from "../services/health/Log.js"

const jsonLayer = Logger.replace(
  Logger.defaultLogger,
  jsonLineLogger.pipe(Logger.map((line) => process.stdout.write(line + "\n")))
)

export const LoggingLive = Layer.unwrapEffect(
  Effect.map(AuroraConfig, ({ log }) => {
    // LOG_FORMAT unset: pretty for a person at a terminal, JSON for whatever collects the output.
    const format = Option.getOrElse(log.format, () => (process.stdout.isTTY ? "pretty" : "json"))
    const logger = format === "json" ? jsonLayer : Logger.pretty
    return Layer.merge(logger, Logger.minimumLogLevel(log.level))
  })
)

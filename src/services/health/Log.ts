/**
 * Log helpers every floor may use: the JSON line format operators ship (`LOG_FORMAT=json`),
 * `logAnnotated`, a log line with annotations of its own that costs nothing when its level is off,
 * and `annotateLogsUnlessSet`, annotations that a caller has usually set already.
 * The logger is installed by ../../layers/Logging.ts; nothing here reads configuration.
 */
import { Cause, Effect, FiberRef, HashMap, List, Logger, LogLevel, Option } from "effect"

const levelName = (level: LogLevel.LogLevel): string => level._tag === "Warning" ? "warning" : level.label.toLowerCase()

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

/**
 * `Effect.annotateLogs(effect, annotations)`, unless every one of them is already set to the same
 * value: then `effect` as it is. For a service whose callers on the hot path have annotated the
 * same ids (ContextService.build under the listener's `messageId`): reading the annotations is one
 * step, setting them around an effect several.
 */
export const annotateLogsUnlessSet = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  annotations: Readonly<Record<string, unknown>>
): Effect.Effect<A, E, R> =>
  Effect.flatMap(FiberRef.get(FiberRef.currentLogAnnotations), (current) => {
    for (const key in annotations) {
      if (!Option.exists(HashMap.get(current, key), (value) => value === annotations[key])) {
        return Effect.annotateLogs(effect, annotations)
      }
    }
    return effect
  })

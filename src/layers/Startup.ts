/**
 * How the program ends when it cannot start: one line on stderr that names the problem (a missing
 * variable, a rejected token, an unusable data directory), no stack trace, exit code 1.
 * A crash after start-up is logged with its full cause as usual.
 */
import { Cause, ConfigError, Effect, Option } from "effect"

const describeConfigError = (error: ConfigError.ConfigError): string => {
  switch (error._op) {
    case "MissingData":
      return `${error.path.join(".")} is not set (required)`
    case "InvalidData":
      return `${error.path.join(".")} is invalid: ${error.message}`
    case "And":
    case "Or":
      return describeConfigError(error.left)
    default:
      return `${error.path.join(".")}: ${error.message}`
  }
}

/** The one line an operator reads when start-up fails. */
export const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (ConfigError.isConfigError(error)) return describeConfigError(error)
    if (error instanceof Error) return error.message.split("\n")[0] ?? error.name
    if (typeof error === "object" && error !== null && "_tag" in error) return String(error._tag)
    return String(error)
  }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) {
    const error = defect.value
    return `unexpected failure: ${error instanceof Error ? (error.message.split("\n")[0] ?? error.name) : String(error)}`
  }
  return "stopped"
}

/**
 * Prints the one-line reason of a failed run on stderr. Interruption (SIGINT/SIGTERM) is a normal
 * stop and prints nothing.
 */
export const reportFailure = <A, E, R>(program: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tapErrorCause(program, (cause) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.void
      : Effect.sync(() => process.stderr.write(`aurora: ${describeFailure(cause)}\n`))
  )

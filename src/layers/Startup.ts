/**
 * How the program ends when it cannot start: one line on stderr per problem (each missing or bad
 * variable, a rejected token, an unusable data directory), no stack trace, exit code 1.
 * A crash after start-up is logged with its full cause as usual.
 */
import { Cause, ConfigError, Effect, Option } from "effect"

/** One line per variable at fault: the configuration reports every bad value at once. */
const describeConfigError = (error: ConfigError.ConfigError): ReadonlyArray<string> => {
  switch (error._op) {
    case "MissingData":
      return [`${error.path.join(".")} is not set (required)`]
    case "InvalidData":
      return [`${error.path.join(".")} is invalid: ${error.message}`]
    case "And":
      return [...describeConfigError(error.left), ...describeConfigError(error.right)]
    case "Or":
      return describeConfigError(error.left)
    default:
      return [`${error.path.join(".")}: ${error.message}`]
  }
}

/** The lines an operator reads when start-up fails (one, unless several variables are at fault). */
export const describeFailure = (cause: Cause.Cause<unknown>): ReadonlyArray<string> => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (ConfigError.isConfigError(error)) return describeConfigError(error)
    if (error instanceof Error) return [error.message.split("\n")[0] ?? error.name]
    if (typeof error === "object" && error !== null && "_tag" in error) return [String(error._tag)]
    return [String(error)]
  }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) {
    const error = defect.value
    return [`unexpected failure: ${error instanceof Error ? (error.message.split("\n")[0] ?? error.name) : String(error)}`]
  }
  return ["stopped"]
}

/**
 * Prints the reason of a failed run on stderr, each line prefixed `aurora: `. Interruption
 * (SIGINT/SIGTERM) is a normal stop and prints nothing.
 */
export const reportFailure = <A, E, R>(program: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tapErrorCause(program, (cause) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.void
      : Effect.sync(() => process.stderr.write(describeFailure(cause).map((line) => `aurora: ${line}\n`).join(""))))

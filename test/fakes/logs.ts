/** Log capture for tests: the lines a piece of code logged, with their level. */
import { Logger } from "effect"

export interface LogLine {
  readonly level: string
  readonly message: string
}

/** Adds a logger that appends every line to `lines` (the test environment has no default logger). */
export const captureLogs = (lines: Array<LogLine>) =>
  Logger.add(
    Logger.make(({ logLevel, message }) => {
      lines.push({ level: logLevel.label, message: Array.isArray(message) ? message.join(" ") : String(message) })
    })
  )

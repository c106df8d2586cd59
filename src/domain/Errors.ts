/** Tagged errors shared by services. Each carries what a caller needs to report it. */
import { Data, type Duration } from "effect"

// --- settings ---------------------------------------------------------------

export class InvalidSetting extends Data.TaggedError("InvalidSetting")<{
  readonly key: string
  readonly value: string
  /** The allowed values in words, e.g. "between 0.5 and 10 seconds". */
  readonly allowed: string
}> {
  override get message() {
    return `${this.key} must be ${this.allowed} (got ${this.value})`
  }
}

// --- Discord ----------------------------------------------------------------

/** The message does not exist (deleted) — Discord 404 / code 10008. */
export class MessageNotFound extends Data.TaggedError("MessageNotFound")<{
  readonly channelId: string
  readonly messageId: string
}> {}

/** The bot may not read it — Discord 403 / codes 50001, 50013. */
export class MissingAccess extends Data.TaggedError("MissingAccess")<{
  readonly channelId: string
  readonly operation: string
}> {}

export class DiscordRateLimited extends Data.TaggedError("DiscordRateLimited")<{
  readonly operation: string
  readonly retryAfter: Duration.Duration
}> {}

/** Any other Discord failure (network, 5xx, unexpected shape). */
export class DiscordError extends Data.TaggedError("DiscordError")<{
  readonly operation: string
  readonly reason: string
}> {}

export type DiscordFailure = MessageNotFound | MissingAccess | DiscordRateLimited | DiscordError

// --- queue ------------------------------------------------------------------

export class QueueFull extends Data.TaggedError("QueueFull")<{
  readonly partition: string
  readonly capacity: number
  readonly messageId: string
}> {}

export class DuplicateEvent extends Data.TaggedError("DuplicateEvent")<{
  readonly messageId: string
}> {}

export type QueueRejection = QueueFull | DuplicateEvent

// --- storage ----------------------------------------------------------------

export class StorageError extends Data.TaggedError("StorageError")<{
  readonly operation: string
  readonly reason: string
}> {}

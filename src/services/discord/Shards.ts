/**
 * Gateway shards, as Aurora reports them. Discord refuses a connection without shards once a bot
 * is in 2 500 guilds (close code 4011), so Aurora runs discord.js' own sharding in one process:
 * `"auto"` takes Discord's recommended count from `GET /gateway/bot`, a number pins it.
 *
 * Health: a shard that is not ready is *down*, from the moment it dropped (or was first seen not
 * ready) until it is ready again. Start-up and every reconnect or resume make a shard briefly
 * down, so only a shard down for more than `shardDownLimit` makes Aurora unhealthy.
 */
import { Status } from "discord.js"
import { Clock, Duration, Effect, type Queue, Ref } from "effect"

/** How many shards: Discord's recommendation, or a pinned count (a positive integer). */
export type ShardCount = number | "auto"

/** The discord.js client options for a shard count; every shard runs in this process. */
export const shardOptions = (
  count: ShardCount
): { readonly shards: "auto" } | { readonly shards: ReadonlyArray<number>; readonly shardCount: number } =>
  count === "auto" ? { shards: "auto" } : { shards: Array.from({ length: count }, (_, id) => id), shardCount: count }

/** A shard's state in one word (discord.js' `Status`, in snake case). */
export type ShardStatus =
  | "ready"
  | "connecting"
  | "reconnecting"
  | "idle"
  | "nearly"
  | "disconnected"
  | "waiting_for_guilds"
  | "identifying"
  | "resuming"

export const shardStatusOf = (status: Status): ShardStatus => {
  switch (status) {
    case Status.Ready:
      return "ready"
    case Status.Connecting:
      return "connecting"
    case Status.Reconnecting:
      return "reconnecting"
    case Status.Idle:
      return "idle"
    case Status.Nearly:
      return "nearly"
    case Status.Disconnected:
      return "disconnected"
    case Status.WaitingForGuilds:
      return "waiting_for_guilds"
    case Status.Identifying:
      return "identifying"
    case Status.Resuming:
      return "resuming"
  }
}

/** What discord.js says about a shard right now. */
export interface ShardReading {
  readonly id: number
  readonly status: ShardStatus
  /** The last heartbeat's round trip; null before the first heartbeat was acknowledged. */
  readonly pingMs: number | null
}

/** The readings of discord.js' shards (`client.ws.shards`), by id. */
export const shardReadings = (
  shards: Iterable<{ readonly id: number; readonly status: Status; readonly ping: number }>
): ReadonlyArray<ShardReading> =>
  [...shards]
    .sort((a, b) => a.id - b.id)
    .map((shard) => ({ id: shard.id, status: shardStatusOf(shard.status), pingMs: shard.ping >= 0 ? shard.ping : null }))

export interface ShardHealth extends ShardReading {
  /** How long the shard has been down; null when it is ready. */
  readonly downForMs: number | null
}

/** A shard down for longer than this makes `/healthz` unhealthy. */
export const shardDownLimit = Duration.seconds(60)

/** Down for more than `shardDownLimit` (exactly the limit still counts as a passing blip). */
export const isLongDown = (shard: ShardHealth): boolean =>
  shard.downForMs !== null && shard.downForMs > Duration.toMillis(shardDownLimit)

/** The shards that are down, with the time (epoch ms) each went down. */
export type DownSince = ReadonlyMap<number, number>

const withDown = (down: DownSince, id: number, now: number): DownSince => down.has(id) ? down : new Map(down).set(id, now)

const withoutDown = (down: DownSince, id: number): DownSince => {
  if (!down.has(id)) return down
  const next = new Map(down)
  next.delete(id)
  return next
}

/**
 * The shards' health from what discord.js reports now. The readings are the truth about up or
 * down; `down` only says since when. A shard seen down without a recorded start is down from now
 * (its drop was not reported as an event), a ready one is up.
 */
export const observe = (
  down: DownSince,
  readings: ReadonlyArray<ShardReading>,
  now: number
): readonly [ReadonlyArray<ShardHealth>, DownSince] => {
  let next = down
  const health = readings.map((reading): ShardHealth => {
    if (reading.status === "ready") {
      next = withoutDown(next, reading.id)
      return { ...reading, downForMs: null }
    }
    next = withDown(next, reading.id, now)
    return { ...reading, downForMs: Math.max(0, now - (next.get(reading.id) ?? now)) }
  })
  return [health, next]
}

/** Remembers when each shard went down, on the clock of the Effect runtime (TestClock in tests). */
export interface ShardTracker {
  /** The shard dropped (reconnecting, or closed for good); a shard already down keeps its start. */
  readonly down: (id: number) => Effect.Effect<void>
  /** The shard is ready again (after READY and its guilds, or a resume). */
  readonly up: (id: number) => Effect.Effect<void>
  readonly health: (readings: ReadonlyArray<ShardReading>) => Effect.Effect<ReadonlyArray<ShardHealth>>
}

export const makeShardTracker: Effect.Effect<ShardTracker> = Effect.map(
  Ref.make<DownSince>(new Map()),
  (ref): ShardTracker => ({
    down: (id) => Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.update(ref, (down) => withDown(down, id, now))),
    up: (id) => Ref.update(ref, (down) => withoutDown(down, id)),
    health: (readings) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.modify(ref, (down) => observe(down, readings, now)))
  })
)

/**
 * Start-up's watchdog: fails with `onStall()` once no shard became ready (an element of
 * `progress`) for `timeout`, counted from the start and then from each ready shard. Never
 * succeeds: race it with the login. Discord paces IDENTIFYs (one per 5 s per `max_concurrency`
 * bucket), so a budget for the whole start-up would have to grow with the shard count.
 */
export const failWhenStalled = <E>(
  progress: Queue.Dequeue<number>,
  timeout: Duration.Duration,
  onStall: () => E
): Effect.Effect<never, E> => Effect.forever(Effect.timeoutFail(progress.take, { duration: timeout, onTimeout: onStall }))

// --- close codes an operator must act on -------------------------------------------------------

/** Discord's close code 4011: the bot is in too many guilds for the shards it identified with. */
export const ShardingRequired = 4011
/** Discord's close code 4014: the bot asked for a privileged intent it is not allowed. */
export const DisallowedIntents = 4014

/**
 * One line for the operator about a close code that discord.js does not recover from by itself,
 * or null for the others (those are logged with their number).
 */
export const closeCodeExplanation = (code: number): string | null => {
  switch (code) {
    case ShardingRequired:
      return "Discord requires more gateway shards (close code 4011, sharding required): the bot is in too many " +
        "guilds for the shard count in use; leave AURORA_SHARD_COUNT unset for Discord's recommended count, or raise it"
    case DisallowedIntents:
      return "Discord refused the gateway intents (close code 4014, disallowed intents): enable the Message Content " +
        "intent for the bot in the Developer Portal (Bot > Privileged Gateway Intents)"
    default:
      return null
  }
}

/**
 * The log line for a shard that closed for good, or null while starting up for a code the failed
 * login reports itself (in the same words).
 */
export const closedForGoodLine = (code: number, startingUp: boolean): string | null => {
  const explanation = closeCodeExplanation(code)
  if (explanation !== null) return startingUp ? null : explanation
  return `Discord gateway closed for good (close code ${code})`
}

/**
 * The close code behind an error @discordjs/ws raises for an unrecoverable close (it raises plain
 * errors with these messages, without the code), or null.
 */
export const closeCodeOfError = (error: unknown): number | null => {
  if (!(error instanceof Error)) return null
  if (error.message === "Sharding is required") return ShardingRequired
  if (error.message === "Used disallowed intents") return DisallowedIntents
  return null
}

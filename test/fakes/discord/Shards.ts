/**
 * Sharding for the fake gateway, as Discord does it: `GET /gateway/bot` recommends a shard count
 * and says how many IDENTIFYs may start at once (`max_concurrency`); each IDENTIFY names its
 * `shard: [id, count]` (absent means `[0, 1]`); a guild lives on shard `(guild_id >> 22) % count`,
 * direct messages and other guild-less events on shard 0; each shard's READY lists only its
 * guilds, and every dispatch goes to the session of its guild's shard.
 *
 * An IDENTIFY is refused the way Discord refuses it: close 4010 for a shard outside its count,
 * 4011 (sharding required) when the shard would hold more guilds than allowed, 4014 (disallowed
 * intents) when it asks for an intent the bot may not use.
 */
import { randomBytes } from "node:crypto"
import type { WebSocket } from "ws"
import type { FakeGuild, Json } from "./Payloads.js"

export interface ShardingOptions {
  /** The shard count `GET /gateway/bot` recommends. Default 1. */
  readonly shards?: number
  /** `session_start_limit.max_concurrency`: IDENTIFY buckets per 5 s. Default 1. */
  readonly maxConcurrency?: number
  /** `session_start_limit.remaining`. Default 999. */
  readonly sessionsRemaining?: number
  /** An IDENTIFY for a shard that would hold more guilds than this is closed with 4011. Default: no limit. */
  readonly maxGuildsPerShard?: number
  /** Intents (a bitfield) the bot may not use: an IDENTIFY asking for one is closed with 4014. */
  readonly disallowedIntents?: number
}

/** `[shard id, shard count]`, as IDENTIFY and READY carry it. */
export type ShardPair = readonly [number, number]

/** The shard a guild's events go to; guild-less events (DMs) go to shard 0. */
export const shardOf = (guildId: string | null, shardCount: number): number =>
  guildId === null ? 0 : Number((BigInt(guildId) >> 22n) % BigInt(shardCount))

export const gatewayBotPayload = (url: string, options: ShardingOptions): Json => ({
  url,
  shards: options.shards ?? 1,
  session_start_limit: {
    total: 1000,
    remaining: options.sessionsRemaining ?? 999,
    reset_after: 14_400_000,
    max_concurrency: options.maxConcurrency ?? 1
  }
})

const isNonNegativeInteger = (value: unknown): value is number =>
  typeof value === "number" && Number.isInteger(value) && value >= 0

/** The `shard` field of an IDENTIFY; `[0, 1]` when absent, null when malformed. */
export const shardField = (d: unknown): ShardPair | null => {
  const shard = typeof d === "object" && d !== null && "shard" in d ? d.shard : undefined
  if (shard === undefined) return [0, 1]
  if (!Array.isArray(shard) || shard.length !== 2) return null
  const [id, count]: ReadonlyArray<unknown> = shard
  return isNonNegativeInteger(id) && isNonNegativeInteger(count) ? [id, count] : null
}

export type IdentifyVerdict =
  | { readonly _tag: "Close"; readonly code: number; readonly reason: string }
  | { readonly _tag: "Accept"; readonly shard: ShardPair; readonly guilds: ReadonlyArray<FakeGuild> }

/** What Discord answers an IDENTIFY (its token already accepted). */
export const identifyVerdict = (
  d: unknown,
  guilds: ReadonlyArray<FakeGuild>,
  options: ShardingOptions
): IdentifyVerdict => {
  const shard = shardField(d)
  if (shard === null || shard[1] === 0 || shard[0] >= shard[1]) {
    return { _tag: "Close", code: 4010, reason: "Invalid shard" }
  }
  const intents = typeof d === "object" && d !== null && "intents" in d ? d.intents : 0
  if (typeof intents === "number" && (intents & (options.disallowedIntents ?? 0)) !== 0) {
    return { _tag: "Close", code: 4014, reason: "Disallowed intent(s)" }
  }
  const own = guilds.filter((guild) => shardOf(guild.id, shard[1]) === shard[0])
  if (options.maxGuildsPerShard !== undefined && own.length > options.maxGuildsPerShard) {
    return { _tag: "Close", code: 4011, reason: "Sharding required" }
  }
  return { _tag: "Accept", shard, guilds: own }
}

/** A gateway session: its sequence and the dispatches it was sent, kept for RESUME. */
export interface Session {
  readonly id: string
  readonly shard: ShardPair
  seq: number
  readonly log: Array<Json & { readonly s: number }>
  socket: WebSocket | null
}

const guildIdOf = (t: string, d: Json): string | null => {
  const id = t === "GUILD_CREATE" ? d["id"] : d["guild_id"]
  return typeof id === "string" ? id : null
}

/** The sessions of every shard, one each (a new IDENTIFY replaces the shard's session). */
export class ShardSessions {
  private readonly byShard = new Map<number, Session>()
  /** The shard count of the last IDENTIFY: the one dispatches are routed by. */
  private shardCount = 1

  start(socket: WebSocket, shard: ShardPair): Session {
    const session: Session = { id: randomBytes(16).toString("hex"), shard, seq: 0, log: [], socket }
    this.byShard.set(shard[0], session)
    this.shardCount = shard[1]
    return session
  }

  find(sessionId: string | undefined): Session | undefined {
    return [...this.byShard.values()].find((session) => session.id === sessionId)
  }

  /** The socket went away; its session stays resumable. */
  detach(socket: WebSocket): void {
    for (const session of this.byShard.values()) if (session.socket === socket) session.socket = null
  }

  /** The session a dispatch goes to: its guild's shard, or shard 0; none before that shard identified. */
  route(t: string, d: Json): Session | undefined {
    return this.byShard.get(shardOf(guildIdOf(t, d), this.shardCount))
  }

  socketOf(shardId: number): WebSocket | null {
    return this.byShard.get(shardId)?.socket ?? null
  }
}

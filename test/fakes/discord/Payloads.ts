/**
 * Discord API v10 payloads as the loopback fake sends them: the minimum discord.js 14 needs to
 * build its structures, with realistic defaults. Plain JSON objects; the fake's world is described
 * with the small Fake* types below.
 */
import { ChannelType } from "discord.js"

/** Discord's epoch (2015-01-01T00:00:00Z); snowflakes count milliseconds from it. */
export const DiscordEpoch = 1_420_070_400_000

let increment = 0

/** A snowflake whose timestamp is `at` (discord.js derives createdTimestamp from the id). */
export const snowflake = (at: number = Date.now()): string => {
  increment = (increment + 1) % 4096
  return ((BigInt(Math.floor(at - DiscordEpoch)) << 22n) | (1n << 17n) | BigInt(increment)).toString()
}

/** The creation time (epoch ms) encoded in a snowflake. */
export const snowflakeTime = (id: string): number => Number(BigInt(id) >> 22n) + DiscordEpoch

export type Json = Record<string, unknown>

export interface FakeUser {
  readonly id: string
  readonly username: string
  /** Unset means the user never chose a display name (global_name null). */
  readonly globalName?: string | null
  readonly bot?: boolean
}

export interface FakeChannel {
  readonly id: string
  readonly name: string
  /** discord.js ChannelType: 0 text, 5 announcement, 11 public thread, 15 forum, ... */
  readonly type: ChannelType
  /** Threads: the channel they belong to. */
  readonly parentId?: string
  /** Every REST call on it answers 403 Missing Access (50001). */
  readonly forbidden?: boolean
  /** Only POST /typing answers 403 Missing Permissions (50013). */
  readonly typingForbidden?: boolean
}

export interface FakeRole {
  readonly id: string
  readonly name: string
  readonly managed?: boolean
}

export interface FakeGuild {
  readonly id: string
  readonly name: string
  /** Text channels, forums and threads alike; threads go to GUILD_CREATE's `threads`. */
  readonly channels: ReadonlyArray<FakeChannel>
  /** The @everyone role (id = guild id) is added when missing. */
  readonly roles?: ReadonlyArray<FakeRole>
  /** Server nicknames by user id, used for `member.nick` on messages. */
  readonly nicknames?: Readonly<Record<string, string>>
}

export interface FakeTeamMember {
  readonly user: FakeUser
  /** "admin" | "developer" | "read_only" */
  readonly role: string
  /** 1 invited, 2 accepted */
  readonly membershipState?: number
}

export type FakeOwner =
  | { readonly _tag: "User"; readonly user: FakeUser }
  | {
    readonly _tag: "Team"
    readonly id: string
    readonly ownerUserId: string
    readonly members: ReadonlyArray<FakeTeamMember>
  }

const isThreadType = (type: ChannelType): boolean =>
  type === ChannelType.PublicThread || type === ChannelType.PrivateThread || type === ChannelType.AnnouncementThread

export const isThread = (channel: FakeChannel): boolean => isThreadType(channel.type)

export const userPayload = (user: FakeUser): Json => ({
  id: user.id,
  username: user.username,
  global_name: user.globalName ?? null,
  discriminator: "0",
  avatar: null,
  bot: user.bot ?? false
})

export const channelPayload = (channel: FakeChannel, guildId: string): Json => {
  const base: Json = {
    id: channel.id,
    type: channel.type,
    name: channel.name,
    guild_id: guildId,
    position: 0,
    permission_overwrites: [],
    nsfw: false
  }
  if (isThread(channel)) {
    return {
      ...base,
      parent_id: channel.parentId ?? null,
      owner_id: null,
      message_count: 0,
      member_count: 1,
      thread_metadata: {
        archived: false,
        auto_archive_duration: 1440,
        archive_timestamp: new Date().toISOString(),
        locked: false
      }
    }
  }
  if (channel.type === ChannelType.GuildForum) return { ...base, available_tags: [], parent_id: null }
  return { ...base, parent_id: channel.parentId ?? null, topic: null, last_message_id: null }
}

export const dmChannelPayload = (channelId: string, recipient: FakeUser): Json => ({
  id: channelId,
  type: ChannelType.DM,
  last_message_id: null,
  recipients: [userPayload(recipient)]
})

const rolePayload = (role: FakeRole, position: number): Json => ({
  id: role.id,
  name: role.name,
  color: 0,
  hoist: false,
  position,
  permissions: "0",
  managed: role.managed ?? false,
  mentionable: false,
  flags: 0
})

export const guildRoles = (guild: FakeGuild): ReadonlyArray<FakeRole> => {
  const roles = guild.roles ?? []
  return roles.some((role) => role.id === guild.id) ? roles : [{ id: guild.id, name: "@everyone" }, ...roles]
}

export const guildCreatePayload = (guild: FakeGuild, botId: string): Json => ({
  id: guild.id,
  name: guild.name,
  icon: null,
  owner_id: botId,
  unavailable: false,
  member_count: 2,
  large: false,
  features: [],
  emojis: [],
  stickers: [],
  roles: guildRoles(guild).map(rolePayload),
  channels: guild.channels.filter((channel) => !isThread(channel)).map((channel) => channelPayload(channel, guild.id)),
  threads: guild.channels.filter(isThread).map((channel) => channelPayload(channel, guild.id)),
  members: [],
  voice_states: [],
  presences: [],
  stage_instances: [],
  guild_scheduled_events: [],
  joined_at: new Date(0).toISOString(),
  preferred_locale: "en-US",
  premium_tier: 0,
  system_channel_flags: 0,
  verification_level: 0,
  nsfw_level: 0,
  mfa_level: 0,
  explicit_content_filter: 0,
  default_message_notifications: 0
})

export const memberPayload = (user: FakeUser, nick: string | null, permissions?: string): Json => ({
  user: userPayload(user),
  nick,
  roles: [],
  joined_at: new Date(0).toISOString(),
  deaf: false,
  mute: false,
  flags: 0,
  ...(permissions === undefined ? {} : { permissions })
})

export const applicationPayload = (applicationId: string, bot: FakeUser, owner: FakeOwner): Json => ({
  id: applicationId,
  name: bot.username,
  icon: null,
  description: "",
  bot_public: false,
  bot_require_code_grant: false,
  verify_key: "0".repeat(64),
  flags: 0,
  bot: userPayload(bot),
  ...(owner._tag === "User"
    ? { owner: userPayload(owner.user), team: null }
    : {
      owner: { id: owner.id, username: `team${owner.id}`, discriminator: "0000", avatar: null, flags: 1024 },
      team: {
        id: owner.id,
        name: "Team",
        icon: null,
        owner_user_id: owner.ownerUserId,
        members: owner.members.map((member) => ({
          team_id: owner.id,
          membership_state: member.membershipState ?? 2,
          permissions: ["*"],
          role: member.role,
          user: userPayload(member.user)
        }))
      }
    })
})

// --- reading what the client sent (request bodies, gateway frames) ---------------------

const isJson = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

export const field = (body: unknown, key: string): unknown => (isJson(body) ? body[key] : undefined)

export const stringField = (body: unknown, key: string): string | undefined => {
  const value = field(body, key)
  return typeof value === "string" ? value : undefined
}

export const jsonArray = (value: unknown): ReadonlyArray<Json> =>
  Array.isArray(value) ? value.filter((item): item is Json => typeof item === "object" && item !== null) : []

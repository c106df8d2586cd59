/**
 * Messages and interactions as the Discord fake builds them: from a test's input (a user's
 * message, a slash command) or from what the bot posted (a channel message, an interaction reply),
 * with the guild, member, mention and reply fields discord.js reads. Building a message in a
 * channel outside every guild opens the DM between the bot and its author.
 */
import { randomBytes } from "node:crypto"
import { ChannelType } from "discord.js"
import {
  channelPayload,
  dmChannelPayload,
  type FakeUser,
  field,
  type Json,
  jsonArray,
  memberPayload,
  snowflake,
  snowflakeTime,
  stringField,
  userPayload
} from "./Payloads.js"
import { type DiscordState, world } from "./State.js"

export interface MessageInput {
  readonly channelId: string
  readonly content?: string
  /** Default: alice. */
  readonly author?: FakeUser
  readonly id?: string
  /** Creation time (epoch ms) encoded in the generated id; default now. */
  readonly at?: number
  /** User ids mentioned (`mentions`). */
  readonly mentions?: ReadonlyArray<string>
  readonly mentionRoles?: ReadonlyArray<string>
  readonly mentionEveryone?: boolean
  /** Makes it a reply (type 19) to this message id. */
  readonly replyTo?: string
  /** Channel of the replied-to message, default the same channel. */
  readonly replyToChannelId?: string
  /**
   * Makes it a forward of this message id (in `replyToChannelId`, default the same channel) as
   * Discord sends one: type 0, `message_reference.type` 1, `message_snapshots` with the forwarded
   * message's content, no `referenced_message`.
   */
  readonly forwardOf?: string
  /** Include `referenced_message` (from the store; null when absent). Default true for replies. */
  readonly includeReferenced?: boolean
  readonly webhookId?: string
  readonly embeds?: ReadonlyArray<Json>
  /** Message components (action rows of buttons), as the bot sent them. */
  readonly components?: ReadonlyArray<Json>
  readonly attachments?: ReadonlyArray<Json>
  readonly editedAt?: number
}

export interface InteractionInput {
  readonly id?: string
  readonly token?: string
  /** 2 application command (default), 3 component, 4 autocomplete, 5 modal submit. */
  readonly type?: number
  /** Default: the default world's guild; null for an interaction in a DM. */
  readonly guildId?: string | null
  readonly channelId?: string
  /** Default: alice. */
  readonly user?: FakeUser
  /** The member's permission bitfield as a decimal string (Manage Server is 32). Default "0". */
  readonly permissions?: string
  /**
   * The interaction's `data`: for a command (type 2) e.g. `{ name: "aurora", type: 1, options: [...] }`,
   * an id added; for a component (type 3) `{ custom_id, component_type: 2 }`, as it is.
   */
  readonly data?: Json
  /** Component interactions: the message the component is on (as the store holds it). */
  readonly message?: Json
}

export type InteractionPayload = Json & { readonly id: string; readonly token: string }

/** A forward's reference and snapshot (Discord: "Message Snapshot Object"). */
const forwardFields = (state: DiscordState, messageId: string, channelId: string, guildId: string | null): Json => {
  const forwarded = state.store.get(channelId)?.get(messageId) as { readonly content?: unknown } | undefined
  return {
    message_reference: {
      type: 1,
      message_id: messageId,
      channel_id: channelId,
      ...(guildId === null ? {} : { guild_id: guildId })
    },
    message_snapshots: [{
      message: {
        type: 0,
        content: typeof forwarded?.content === "string" ? forwarded.content : "",
        embeds: [],
        attachments: [],
        timestamp: new Date().toISOString(),
        edited_timestamp: null,
        flags: 0,
        mentions: [],
        mention_roles: []
      }
    }]
  }
}

export const buildMessage = (state: DiscordState, input: MessageInput): Json => {
  const author = input.author ?? world.alice
  state.users.set(author.id, author)
  const id = input.id ?? snowflake(input.at ?? Date.now())
  const location = state.channels.get(input.channelId)
  const guildId = location?.guild.id ?? null
  // A channel outside every guild is a DM between the bot and the (non-bot) author.
  if (location === undefined && !state.dmChannels.has(input.channelId) && author.id !== state.bot.id) {
    state.dmChannels.set(input.channelId, author)
    state.dmByUser.set(author.id, input.channelId)
  }
  const nick = location?.guild.nicknames?.[author.id] ?? null
  const reply = input.replyTo
  const referencedChannel = input.replyToChannelId ?? input.channelId
  const referenced = reply === undefined ? undefined : state.store.get(referencedChannel)?.get(reply)
  return {
    id,
    channel_id: input.channelId,
    ...(guildId === null ? { channel_type: ChannelType.DM } : { guild_id: guildId }),
    author: userPayload(author),
    ...(guildId !== null && input.webhookId === undefined
      ? { member: { ...memberPayload(author, nick), user: undefined } }
      : {}),
    content: input.content ?? "",
    timestamp: new Date(snowflakeTime(id)).toISOString(),
    edited_timestamp: input.editedAt === undefined ? null : new Date(input.editedAt).toISOString(),
    tts: false,
    mention_everyone: input.mentionEveryone ?? false,
    mentions: (input.mentions ?? []).map((userId) => userPayload(state.userById(userId))),
    mention_roles: input.mentionRoles ?? [],
    attachments: input.attachments ?? [],
    embeds: input.embeds ?? [],
    components: input.components ?? [],
    pinned: false,
    type: reply === undefined ? 0 : 19,
    flags: 0,
    ...(input.webhookId === undefined ? {} : { webhook_id: input.webhookId }),
    ...(input.forwardOf === undefined ? {} : forwardFields(state, input.forwardOf, referencedChannel, guildId)),
    ...(reply === undefined
      ? {}
      : {
        message_reference: {
          type: 0,
          message_id: reply,
          channel_id: referencedChannel,
          ...(guildId === null ? {} : { guild_id: guildId })
        },
        ...(input.includeReferenced === false
          ? {}
          : { referenced_message: referenced === undefined ? null : { ...referenced, referenced_message: undefined } })
      })
  }
}

export const buildInteraction = (state: DiscordState, input: InteractionInput): InteractionPayload => {
  const id = input.id ?? snowflake()
  const token = input.token ?? `interaction-token-${randomBytes(8).toString("hex")}`
  const user = input.user ?? world.alice
  state.users.set(user.id, user)
  const guildId = input.guildId === undefined ? state.guilds[0]?.id ?? null : input.guildId
  const channelId = input.channelId ?? (guildId === null ? state.dmChannelFor(user) : world.general)
  const location = state.channels.get(channelId)
  state.interactionChannels.set(token, channelId)
  const type = input.type ?? 2
  state.interactionTypes.set(token, type)
  if (input.message !== undefined) {
    state.componentMessages.set(token, { channelId: String(input.message["channel_id"]), messageId: String(input.message["id"]) })
  }
  const channel = location === undefined
    ? dmChannelPayload(channelId, user)
    : channelPayload(location.channel, location.guild.id)
  const nick = location?.guild.nicknames?.[user.id] ?? null
  return {
    id,
    token,
    application_id: state.applicationId,
    type,
    version: 1,
    channel_id: channelId,
    channel,
    ...(guildId === null
      ? { user: userPayload(user), context: 1 }
      : { guild_id: guildId, member: memberPayload(user, nick, input.permissions ?? "0"), context: 0 }),
    data: type === 3 ? { ...input.data } : { id: snowflake(), name: "aurora", type: 1, ...input.data },
    ...(input.message === undefined ? {} : { message: input.message }),
    locale: "en-US",
    guild_locale: "en-US",
    app_permissions: "2248473465835073",
    entitlements: [],
    authorizing_integration_owners: guildId === null ? { "1": user.id } : { "0": guildId },
    attachment_size_limit: 8_388_608
  }
}

/** A message the bot posts (channel message, DM, interaction reply), with the mentions Discord derived (default none). */
export const botMessage = (
  state: DiscordState,
  channelId: string,
  body: unknown,
  extra: Json = {},
  mentions: Pick<MessageInput, "mentions" | "mentionRoles" | "mentionEveryone"> = {}
): Json => {
  const reference = field(body, "message_reference")
  const replyTo = stringField(reference, "message_id")
  const message = buildMessage(state, {
    channelId,
    author: state.bot,
    content: stringField(body, "content") ?? "",
    ...(replyTo === undefined ? {} : { replyTo }),
    embeds: jsonArray(field(body, "embeds")),
    components: jsonArray(field(body, "components")),
    ...mentions
  })
  return { ...message, ...extra, member: undefined }
}

/**
 * The Discord fake's REST routes (paths after `/api/v10`), the ones a bot like Aurora calls:
 * gateway discovery, the bot user and its application, DM channels, channels and their messages
 * (read, list, post — a post is checked and handled as Discord does (Posts.ts), stored and, unless
 * `echoBotMessages: false`, echoed as MESSAGE_CREATE), typing, the bot's own reactions (PUT,
 * idempotent: 204 whether new or not), application commands (bulk overwrite), interaction callbacks
 * (a component's UPDATE_MESSAGE edits its message) and their webhook follow-ups, and edits of the
 * bot's messages (Components.ts). A forbidden channel answers 403 Missing Access, an unknown one 404
 * Unknown Channel, an unknown message 404 Unknown Message, a reaction where the bot lacks Add
 * Reactions 403 Missing Permissions and an emoji that is neither Unicode nor `name:id` 400 Unknown
 * Emoji, as Discord does.
 */
import {
  applicationPayload,
  channelPayload,
  dmChannelPayload,
  type FakeOwner,
  field,
  type Json,
  snowflake,
  stringField,
  userPayload
} from "./Payloads.js"
import { discordError, json, noContent, type Reply, type Route, type RouteContext } from "./Http.js"
import { alreadyAcknowledged, editedMessage, notAComponentInteraction, notAuthor, richContentProblem } from "./Components.js"
import { botMessage } from "./Messages.js"
import { createChannelPost } from "./Posts.js"
import { gatewayBotPayload } from "./Shards.js"
import { type DiscordState, world } from "./State.js"

const unknownChannel = discordError(404, 10003, "Unknown Channel")
const unknownMessage = discordError(404, 10008, "Unknown Message")
const missingAccess = discordError(403, 50001, "Missing Access")
const missingPermissions = discordError(403, 50013, "Missing Permissions")
const unknownEmoji = discordError(400, 10014, "Unknown Emoji")

/** A Unicode emoji (the path is percent-decoded already) or a custom one as `name:id` / `a:name:id`. */
const isEmoji = (emoji: string): boolean => {
  if (/^(?:a:)?\w{2,32}:\d+$/.test(emoji)) return true
  // Joiners and presentation selectors only glue pictographs together.
  const bare = emoji.replace(/\u200D|\uFE0F/g, "")
  return /^[\p{Extended_Pictographic}\p{Emoji_Component}]+$/u.test(bare) && /\p{Extended_Pictographic}/u.test(bare)
}

const compareIds = (a: string, b: string): number => {
  const x = BigInt(a)
  const y = BigInt(b)
  return x < y ? -1 : x > y ? 1 : 0
}

const route = (method: string, pattern: RegExp, handle: Route["handle"], auth = true): Route => ({
  method,
  pattern,
  auth,
  handle
})

const param = (context: RouteContext, i: number): string => context.params[i] ?? ""

export const makeRoutes = (
  state: DiscordState,
  /** Where the bot's echoed messages go. */
  dispatch: (t: string, d: Json) => void,
  gatewayUrl: () => string
): ReadonlyArray<Route> => {
  const channelCheck = (channelId: string): Reply | null => {
    if (state.forbidden.has(channelId)) return missingAccess
    if (!state.channels.has(channelId) && !state.dmChannels.has(channelId)) return unknownChannel
    return null
  }
  const commandsReply = (key: string, guildId: string | undefined, body: unknown): Reply => {
    const commands = (Array.isArray(body) ? body : []).map((command: unknown): Json => ({
      id: snowflake(),
      application_id: state.applicationId,
      version: snowflake(),
      type: 1,
      default_member_permissions: null,
      nsfw: false,
      ...(typeof command === "object" && command !== null ? command : {}),
      ...(guildId === undefined ? {} : { guild_id: guildId })
    }))
    state.commands.set(key, commands)
    return json(200, commands)
  }
  const interactionMessage = (token: string, body: unknown): Json => {
    const previous = state.interactionReplies.get(token)
    const channelId = state.interactionChannels.get(token) ?? world.general
    const message = botMessage(state, channelId, body, {
      webhook_id: state.applicationId,
      flags: typeof field(body, "flags") === "number" ? field(body, "flags") : 0,
      ...(previous === undefined ? {} : { id: previous["id"] })
    })
    state.interactionReplies.set(token, message)
    return message
  }
  /** Applies an edit of a stored message (already checked) and records it. */
  const editMessage = (channelId: string, messageId: string, body: unknown, via: "rest" | "interaction"): Json | undefined => {
    const stored = state.store.get(channelId)?.get(messageId)
    if (stored === undefined) return undefined
    const message = editedMessage(stored, body)
    state.storeJson(message)
    state.edits.push({ channelId, messageId, via, body, message, at: Date.now() })
    if (state.options.echoBotMessages !== false) dispatch("MESSAGE_UPDATE", message)
    return message
  }
  const appOwner: FakeOwner = state.options.owner ?? { _tag: "User", user: world.alice }
  const application = () => json(200, applicationPayload(state.applicationId, state.bot, appOwner))

  return [
    route("GET", /^\/gateway\/bot$/, () => json(200, gatewayBotPayload(gatewayUrl(), state.options))),
    route("GET", /^\/gateway$/, () => json(200, { url: gatewayUrl() }), false),
    route("GET", /^\/users\/@me$/, () => json(200, { ...userPayload(state.bot), bot: true, verified: true })),
    route("GET", /^\/oauth2\/applications\/@me$/, application),
    route("GET", /^\/applications\/@me$/, application),
    route("POST", /^\/users\/@me\/channels$/, ({ body }) => {
      const recipient = stringField(body, "recipient_id")
      if (recipient === undefined) return discordError(400, 50035, "Invalid Form Body")
      const user = state.userById(recipient)
      return json(200, dmChannelPayload(state.dmChannelFor(user), user))
    }),
    route("GET", /^\/channels\/(\d+)$/, (context) => {
      const channelId = param(context, 0)
      const failure = channelCheck(channelId)
      if (failure !== null) return failure
      const location = state.channels.get(channelId)
      if (location !== undefined) return json(200, channelPayload(location.channel, location.guild.id))
      return json(200, dmChannelPayload(channelId, state.dmChannels.get(channelId) ?? world.alice))
    }),
    route("GET", /^\/channels\/(\d+)\/messages\/(\d+)$/, (context) => {
      const failure = channelCheck(param(context, 0))
      if (failure !== null) return failure
      const message = state.store.get(param(context, 0))?.get(param(context, 1))
      return message === undefined ? unknownMessage : json(200, message)
    }),
    route("GET", /^\/channels\/(\d+)\/messages$/, (context) => {
      const failure = channelCheck(param(context, 0))
      if (failure !== null) return failure
      const before = context.query.get("before")
      const after = context.query.get("after")
      const limit = Number(context.query.get("limit") ?? "50")
      const list = state.storedMessages(param(context, 0))
        .filter((message) => before === null || compareIds(String(message["id"]), before) < 0)
        .filter((message) => after === null || compareIds(String(message["id"]), after) > 0)
        .sort((a, b) => compareIds(String(b["id"]), String(a["id"])))
        .slice(0, limit)
      // Held: the read is handled (recorded), but its answer is late.
      return state.heldReads === null ? json(200, list) : { ...json(200, list), heldUntil: state.heldReads.released }
    }),
    route("POST", /^\/channels\/(\d+)\/messages$/, (context) => {
      const channelId = param(context, 0)
      const failure = channelCheck(channelId)
      if (failure !== null) return failure
      return createChannelPost(state, channelId, context.body, (message) => {
        if (state.options.echoBotMessages !== false) dispatch("MESSAGE_CREATE", message)
      })
    }),
    route("PATCH", /^\/channels\/(\d+)\/messages\/(\d+)$/, (context) => {
      const channelId = param(context, 0)
      const failure = channelCheck(channelId)
      if (failure !== null) return failure
      const stored = state.store.get(channelId)?.get(param(context, 1))
      if (stored === undefined) return unknownMessage
      if (stringField(field(stored, "author"), "id") !== state.bot.id) return notAuthor
      const problem = richContentProblem(context.body)
      if (problem !== null) return problem
      return json(200, editMessage(channelId, param(context, 1), context.body, "rest"))
    }),
    route("POST", /^\/channels\/(\d+)\/typing$/, (context) => {
      const channelId = param(context, 0)
      const failure = channelCheck(channelId)
      if (failure !== null) return failure
      return state.typingForbidden.has(channelId) ? discordError(403, 50013, "Missing Permissions") : noContent
    }),
    route("PUT", /^\/channels\/(\d+)\/messages\/(\d+)\/reactions\/([^/]+)\/@me$/, (context) => {
      const channelId = param(context, 0)
      const messageId = param(context, 1)
      const emoji = param(context, 2)
      const failure = channelCheck(channelId)
      if (failure !== null) return failure
      if (state.reactionsForbidden.has(channelId)) return missingPermissions
      if (state.store.get(channelId)?.get(messageId) === undefined) return unknownMessage
      if (!isEmoji(emoji)) return unknownEmoji
      const byMessage = state.reactions.get(channelId) ?? new Map<string, Set<string>>()
      byMessage.set(messageId, (byMessage.get(messageId) ?? new Set<string>()).add(emoji))
      state.reactions.set(channelId, byMessage)
      return noContent
    }),
    route("GET", /^\/applications\/(\d+)\/commands$/, () => json(200, state.commands.get("global") ?? [])),
    route("PUT", /^\/applications\/(\d+)\/commands$/, ({ body }) => commandsReply("global", undefined, body)),
    route(
      "PUT",
      /^\/applications\/(\d+)\/guilds\/(\d+)\/commands$/,
      (context) => commandsReply(param(context, 1), param(context, 1), context.body)
    ),
    route("POST", /^\/interactions\/(\d+)\/([^/]+)\/callback$/, (context) => {
      const token = param(context, 1)
      const type = field(context.body, "type")
      const data = field(context.body, "data")
      if (state.acknowledged.has(token)) return alreadyAcknowledged
      const component = state.componentMessages.get(token)
      if ((type === 6 || type === 7) && component === undefined) return notAComponentInteraction
      if (type === 4 || type === 7) {
        const problem = richContentProblem(data)
        if (problem !== null) return problem
      }
      state.acknowledged.add(token)
      // 4: reply with a message; 5: deferred (the reply comes as an edit of @original);
      // 7: update the component's message; 6: deferred update (nothing changes yet).
      const message = type === 4
        ? interactionMessage(token, data)
        : type === 7 && component !== undefined
        ? editMessage(component.channelId, component.messageId, data, "interaction")
        : undefined
      if (context.query.get("with_response") !== "true") return noContent
      return json(200, {
        interaction: {
          id: param(context, 0),
          type: state.interactionTypes.get(token) ?? 2,
          response_message_id: message?.["id"] ?? null,
          response_message_loading: type === 5,
          response_message_ephemeral: (Number(field(data, "flags") ?? 0) & 64) === 64
        },
        resource: { type, ...(message === undefined ? {} : { message }) }
      })
    }, false),
    route("GET", /^\/webhooks\/(\d+)\/([^/]+)\/messages\/@original$/, (context) => {
      const message = state.interactionReplies.get(param(context, 1))
      return message === undefined ? unknownMessage : json(200, message)
    }, false),
    route(
      "PATCH",
      /^\/webhooks\/(\d+)\/([^/]+)\/messages\/@original$/,
      (context) => json(200, interactionMessage(param(context, 1), context.body)),
      false
    ),
    route("DELETE", /^\/webhooks\/(\d+)\/([^/]+)\/messages\/@original$/, (context) => {
      state.interactionReplies.delete(param(context, 1))
      return noContent
    }, false),
    route("POST", /^\/webhooks\/(\d+)\/([^/]+)$/, (context) => {
      const channelId = state.interactionChannels.get(param(context, 1)) ?? world.general
      const message = botMessage(state, channelId, context.body, { webhook_id: state.applicationId })
      state.storeJson(message)
      return json(200, message)
    }, false)
  ]
}

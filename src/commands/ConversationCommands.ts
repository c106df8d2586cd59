/**
 * `/aurora conversation show|reset [scope] [channel_id]` and `/aurora config conversations value:
 * [scope]`: the Letta conversation a channel's mentions go to in `channel` mode.
 *
 * - `show` (this channel): the conversation of the channel for the guild's bound agent (id,
 *   agent, created, last used) or "none yet", the server's mode and how many conversations the
 *   agent has in this server. With `scope:dm` (owners): the DM agent's conversations, how many
 *   and the most recently used few, with their DM channel ids.
 * - `reset` forgets a mapping: the next mention in that channel creates a new conversation. The
 *   old conversation stays on the Letta server with its messages; the agent's memory blocks are
 *   shared by all its conversations and are not touched. `channel_id` names another channel or
 *   thread of this server (default: this channel); with `scope:dm` it is required and names a DM
 *   channel, as `show scope:dm` lists them (a command knows no user's DM channel by itself).
 * - `config conversations scope:dm` (owners) sets the DMs' mode; without scope it is the guild
 *   setting, as every other `config` option.
 */
import { channelMention, time, TimestampStyles } from "discord.js"
import { Effect, Option } from "effect"
import { type ConversationMode, Partition } from "../domain/Event.js"
import { ConversationStore, type ConversationKey } from "../services/conversation/ConversationStore.js"
import { EventQueue } from "../services/queue/EventQueue.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"
import { requireAccess } from "./Access.js"
import { setConfig } from "./ConfigCommands.js"
import { channelIdMaxLength } from "./Definitions.js"
import { code, plural } from "./Format.js"
import { Colors, CommandRejected, type Invocation, Reply } from "./Invocation.js"
import { guildOf, optionalString, requiredValue, scopeOf } from "./Options.js"

/** DM conversations listed by `show scope:dm`, most recently used first. */
export const maxListedConversations = 10

const reject = (message: string) => new CommandRejected({ message })

const snowflake = new RegExp(`^\\d{1,${channelIdMaxLength}}$`)

const modeText = (mode: ConversationMode): string =>
  mode === "channel"
    ? "`channel`: one conversation per channel and thread, running in parallel"
    : "`shared`: every channel goes to the agent's default conversation, one run at a time"

// --- config conversations -----------------------------------------------------------------------

export const setConversations = (invocation: Invocation) =>
  Effect.gen(function*() {
    yield* guildOf(invocation)
    const scope = yield* scopeOf(invocation, "dm")
    if (scope === "guild") return yield* setConfig("conversations")(invocation)
    yield* requireAccess(invocation, "owner", "/aurora config conversations scope:dm")
    const raw = yield* requiredValue(invocation, "value")
    const store = yield* SettingsStore
    const global = yield* store.setDmConversations(raw)
    const queue = yield* EventQueue
    yield* queue.limitsChanged
    yield* Effect.logInfo("setting changed").pipe(
      Effect.annotateLogs({ setting: "dmConversations", value: global.dmConversations })
    )
    return Reply.text(
      `✅ **conversations** for direct messages is now **${global.dmConversations}**. Applies to direct messages ` +
        "queued from now on (queued ones keep their mode)."
    )
  })

// --- show ---------------------------------------------------------------------------------------

/** The DM agent, for owners; rejects when DMs are off. */
const dmAgent = Effect.gen(function*() {
  const global = yield* (yield* SettingsStore).global
  if (global.dmAgentId === null) {
    return yield* reject("ℹ️ Direct messages are off (`/aurora dm enable`), so there are no DM conversations.")
  }
  return { agentId: global.dmAgentId, mode: global.dmConversations }
})

/** The guild's bound agent (enabled or not: its conversations are kept either way). */
const guildAgent = (guildId: string) =>
  Effect.gen(function*() {
    const state = yield* (yield* SettingsStore).guild(guildId)
    if (state.agentId === null) {
      return yield* reject("ℹ️ No agent is bound to this server (`/aurora enable`), so there is no conversation.")
    }
    return { agentId: state.agentId, mode: state.settings.conversations }
  })

const showDm = Effect.gen(function*() {
  const { agentId, mode } = yield* dmAgent
  const store = yield* ConversationStore
  const page = yield* store.forAgent(agentId, Partition.key(Partition.dm), maxListedConversations)
  const hidden = page.total - page.newest.length
  const lines = [
    ...page.newest.map((c) =>
      `DM channel ${code(c.channelId, 40)} → ${code(c.conversationId, 80)} · created ${
        time(new Date(c.createdAt), TimestampStyles.RelativeTime)
      } · ` +
      `last used ${time(new Date(c.lastUsedAt), TimestampStyles.RelativeTime)}`
    ),
    ...(hidden > 0 ? [`… and ${plural(hidden, "less recently used conversation")}`] : [])
  ]
  return Reply.embed({
    title: `DM conversations: ${page.total}`,
    description: [`Agent: ${code(agentId)}`, `Mode: ${modeText(mode)}`, ...lines].join("\n"),
    color: Colors.info,
    footer: "Most recently used first. /aurora conversation reset scope:dm channel_id:<id> forgets one."
  })
})

export const conversationShow = (invocation: Invocation) =>
  Effect.gen(function*() {
    const guildId = yield* guildOf(invocation)
    const scope = yield* scopeOf(invocation, "dm")
    if (scope === "dm") {
      yield* requireAccess(invocation, "owner", "/aurora conversation show scope:dm")
      return yield* showDm
    }
    const channelId = invocation.channelId
    if (channelId === null) return yield* reject("❌ Run this in the channel whose conversation you want to see.")
    const { agentId, mode } = yield* guildAgent(guildId)
    const store = yield* ConversationStore
    const partitionKey = Partition.key(Partition.guild(guildId))
    const found = yield* store.get({ agentId, partitionKey, channelId })
    const total = (yield* store.forAgent(agentId, partitionKey, 0)).total
    const conversation = Option.match(found, {
      onNone: () => [{ name: "Conversation", value: "none yet: the next mention here starts one", inline: false }],
      onSome: (record) => [
        { name: "Conversation", value: code(record.conversationId), inline: false },
        { name: "Created", value: time(new Date(record.createdAt), TimestampStyles.RelativeTime), inline: true },
        { name: "Last used", value: time(new Date(record.lastUsedAt), TimestampStyles.RelativeTime), inline: true }
      ]
    })
    return Reply.embed({
      title: "Conversation of this channel",
      color: Colors.info,
      fields: [
        ...conversation,
        { name: "Agent", value: code(agentId), inline: false },
        { name: "Mode", value: modeText(mode), inline: false }
      ],
      footer: `The agent has ${plural(total, "conversation")} in this server. ` +
        "/aurora conversation reset forgets this channel's."
    })
  })

// --- reset --------------------------------------------------------------------------------------

const channelIdOption = (invocation: Invocation): Effect.Effect<string | null, CommandRejected> =>
  Effect.flatMap(optionalString(invocation, "channel_id"), (value) => {
    if (value === null) return Effect.succeed(null)
    const id = value.trim()
    return snowflake.test(id)
      ? Effect.succeed(id)
      : Effect.fail(reject("❌ `channel_id` must be a channel id (digits), as Discord's \"Copy Channel ID\" gives it."))
  })

export const conversationReset = (invocation: Invocation) =>
  Effect.gen(function*() {
    const guildId = yield* guildOf(invocation)
    const scope = yield* scopeOf(invocation, "dm")
    if (scope === "dm") yield* requireAccess(invocation, "owner", "/aurora conversation reset scope:dm")
    const given = yield* channelIdOption(invocation)
    const channelId = given ?? (scope === "guild" ? invocation.channelId : null)
    if (channelId === null) {
      return yield* reject(
        scope === "dm"
          ? "❌ With `scope:dm`, give the DM channel's `channel_id` (`/aurora conversation show scope:dm` lists them)."
          : "❌ Run this in the channel whose conversation you want to reset, or give its `channel_id`."
      )
    }
    const { agentId } = scope === "dm" ? yield* dmAgent : yield* guildAgent(guildId)
    const partition = scope === "dm" ? Partition.dm : Partition.guild(guildId)
    const key: ConversationKey = { agentId, partitionKey: Partition.key(partition), channelId }
    const store = yield* ConversationStore
    const found = yield* store.get(key)
    const forgotten = yield* store.forget(key)
    const place = scope === "dm" ? `DM channel ${code(channelId, 40)}` : channelMention(channelId)
    if (!forgotten) {
      return Reply.text(`ℹ️ ${place} has no conversation with agent ${code(agentId)} yet; the next mention there starts one.`)
    }
    const conversationId = Option.match(found, { onNone: () => "-", onSome: (record) => record.conversationId })
    yield* Effect.logInfo("conversation reset").pipe(Effect.annotateLogs({ scope, agentId, channelId, conversationId }))
    return Reply.text(
      `✅ Forgot the conversation ${code(conversationId)} of ${place}: the next mention there starts a new conversation with ` +
        `agent ${code(agentId)}. The old one stays on the Letta server with its messages; the agent's memory is unchanged.`
    )
  })

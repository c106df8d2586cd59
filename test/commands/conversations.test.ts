/**
 * `/aurora conversation show|reset` and `/aurora config conversations|parallel`: the channel's
 * conversation for the bound agent (the SQL ConversationStore of the harness database), the DM
 * scope for owners, and the two settings' checks, scopes and their call to `limitsChanged`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Ref } from "effect"
import { Partition } from "../../src/domain/Event.js"
import { defaultGuildSettings } from "../../src/domain/Settings.js"
import { ConversationStore } from "../../src/services/conversation/ConversationStore.js"
import { EventQueue } from "../../src/services/queue/EventQueue.js"
import { SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { ids, replyText, withHarness } from "./harness.js"

const guildKey = Partition.key(Partition.guild(ids.guild))
const otherChannel = "200000000000000009"
/** 2023-11-14T22:13:20Z. */
const created = 1_700_000_000_000
const at = (ms: number) => `<t:${Math.floor(ms / 1000)}:R>`

const enable = (agentId = "agent-1") => Effect.flatMap(SettingsStore, (store) => store.enable(ids.guild, agentId))
const conversations = ConversationStore
const guildConversation = (channelId: string, agentId = "agent-1") => ({ agentId, partitionKey: guildKey, channelId })

/** Runs `effect` with an EventQueue whose `limitsChanged` is counted (the rest is the real queue). */
const countingLimitsChanged = <A, E, R>(count: Ref.Ref<number>, effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(EventQueue, (queue) =>
    effect.pipe(
      Effect.provideService(EventQueue, {
        ...queue,
        limitsChanged: Effect.zipRight(Ref.update(count, (n) => n + 1), queue.limitsChanged)
      })
    ))

describe("/aurora conversation show", () => {
  it.scoped("without a bound agent there is nothing to show", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        expect(replyText(yield* h.run("admin", "conversation show"))).toBe(
          "ℹ️ No agent is bound to this server (`/aurora enable`), so there is no conversation."
        )
      })
    ))

  it.scoped("none yet, then the conversation with its agent, times, mode and the agent's count in this server", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* enable()
        const before = yield* h.run("admin", "conversation show")
        expect(before.embed?.title).toBe("Conversation of this channel")
        expect(replyText(before)).toContain("Conversation: none yet: the next mention here starts one")
        expect(replyText(before)).toContain("Agent: `agent-1`")
        expect(replyText(before)).toContain("Mode: `channel`: one conversation per channel and thread")
        expect(before.embed?.footer).toBe(
          "The agent has 0 conversations in this server. /aurora conversation reset forgets this channel's."
        )

        const store = yield* conversations
        yield* store.put(guildConversation(ids.channel), "conv-1", created)
        yield* store.put(guildConversation(otherChannel), "conv-2", created)
        yield* store.touch(guildConversation(ids.channel), created + 120_000)
        // Another agent's and another guild's conversations of the same channel are not this one.
        yield* store.put(guildConversation(ids.channel, "agent-old"), "conv-old", created)
        yield* store.put({ ...guildConversation(ids.channel), partitionKey: "guild:other" }, "conv-x", created)

        const fields = Object.fromEntries(
          ((yield* h.run("admin", "conversation show")).embed?.fields ?? []).map((f) => [f.name, f.value])
        )
        expect(fields).toEqual({
          Conversation: "`conv-1`",
          Created: at(created),
          "Last used": at(created + 120_000),
          Agent: "`agent-1`",
          Mode: "`channel`: one conversation per channel and thread, running in parallel"
        })
        expect((yield* h.run("admin", "conversation show")).embed?.footer).toContain("The agent has 2 conversations")

        // A thread is its own channel: run there, it has none.
        const inThread = yield* h.run("admin", "conversation show", {}, { channelId: "300000000000000001" })
        expect(replyText(inThread)).toContain("none yet")

        yield* Effect.flatMap(SettingsStore, (s) => s.setSetting(ids.guild, "conversations", "shared"))
        expect(replyText(yield* h.run("admin", "conversation show"))).toContain(
          "Mode: `shared`: every channel goes to the agent's default conversation, one run at a time"
        )
      })
    ))

  it.scoped("scope:dm is owner-only: the DM agent's count and its most recently used conversations", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        expect(replyText(yield* h.run("admin", "conversation show", { scope: "dm" }))).toBe(
          "⛔ Only Aurora's owners can use `/aurora conversation show scope:dm`."
        )
        expect(replyText(yield* h.run("owner", "conversation show", { scope: "dm" }))).toBe(
          "ℹ️ Direct messages are off (`/aurora dm enable`), so there are no DM conversations."
        )
        yield* Effect.flatMap(SettingsStore, (s) => s.setDmAgent("agent-dm"))
        const store = yield* conversations
        for (let i = 0; i < 12; i++) {
          yield* store.put(
            { agentId: "agent-dm", partitionKey: "dm", channelId: `4000000000000000${10 + i}` },
            `conv-${i}`,
            created + i * 1_000
          )
        }
        yield* store.put(guildConversation(ids.channel, "agent-dm"), "conv-guild", created + 99_000)
        const reply = yield* h.run("owner", "conversation show", { scope: "dm" })
        expect(reply.embed?.title).toBe("DM conversations: 12")
        const lines = reply.embed?.description?.split("\n") ?? []
        expect(lines.slice(0, 2)).toEqual([
          "Agent: `agent-dm`",
          "Mode: `channel`: one conversation per channel and thread, running in parallel"
        ])
        expect(lines[2]).toBe(
          `DM channel \`400000000000000021\` → \`conv-11\` · created ${at(created + 11_000)} · last used ${at(created + 11_000)}`
        )
        expect(lines).toHaveLength(2 + 10 + 1)
        expect(lines[11]).toContain("`conv-2`")
        expect(lines[12]).toBe("… and 2 less recently used conversations")
        expect(reply.embed?.description).not.toContain("conv-guild")
      })
    ))
})

describe("/aurora conversation reset", () => {
  it.scoped("forgets this channel's conversation and says the next mention starts a new one", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* enable()
        const store = yield* conversations
        yield* store.put(guildConversation(ids.channel), "conv-1", created)
        yield* store.put(guildConversation(otherChannel), "conv-2", created)
        const reply = yield* h.run("admin", "conversation reset")
        expect(replyText(reply)).toBe(
          `✅ Forgot the conversation \`conv-1\` of <#${ids.channel}>: the next mention there starts a new conversation ` +
            "with agent `agent-1`. The old one stays on the Letta server with its messages; the agent's memory is unchanged."
        )
        expect(yield* store.get(guildConversation(ids.channel))).toEqual(Option.none())
        expect(Option.isSome(yield* store.get(guildConversation(otherChannel)))).toBe(true)
        expect(replyText(yield* h.run("admin", "conversation reset"))).toBe(
          `ℹ️ <#${ids.channel}> has no conversation with agent \`agent-1\` yet; the next mention there starts one.`
        )
        const log = (yield* h.logLines).find((line) => line.message === "conversation reset")
        expect(log?.annotations).toMatchObject({
          scope: "guild",
          agentId: "agent-1",
          channelId: ids.channel,
          conversationId: "conv-1"
        })
      })
    ))

  it.scoped("channel_id names another channel of this server; anything but an id is refused", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* enable()
        const store = yield* conversations
        yield* store.put(guildConversation(otherChannel), "conv-2", created)
        const otherGuild = { ...guildConversation(otherChannel), partitionKey: Partition.key(Partition.guild(ids.otherGuild)) }
        yield* store.put(otherGuild, "conv-other-guild", created)
        for (const bad of ["general", "<#200000000000000009>", "1".repeat(26), "12 34"]) {
          expect(replyText(yield* h.run("admin", "conversation reset", { channel_id: bad }))).toBe(
            "❌ `channel_id` must be a channel id (digits), as Discord's \"Copy Channel ID\" gives it."
          )
        }
        expect(Option.isSome(yield* store.get(guildConversation(otherChannel)))).toBe(true)
        expect(replyText(yield* h.run("admin", "conversation reset", { channel_id: ` ${otherChannel} ` }))).toContain(
          `Forgot the conversation \`conv-2\` of <#${otherChannel}>`
        )
        // The same channel id under another guild is that guild's business.
        expect(Option.isSome(yield* store.get(otherGuild))).toBe(true)
      })
    ))

  it.scoped("scope:dm is owner-only and needs the DM channel's id", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const dmKey = { agentId: "agent-dm", partitionKey: "dm", channelId: "400000000000000010" }
        const store = yield* conversations
        yield* store.put(dmKey, "conv-dm", created)
        expect(replyText(yield* h.run("admin", "conversation reset", { scope: "dm", channel_id: dmKey.channelId }))).toBe(
          "⛔ Only Aurora's owners can use `/aurora conversation reset scope:dm`."
        )
        expect(replyText(yield* h.run("owner", "conversation reset", { scope: "dm" }))).toBe(
          "❌ With `scope:dm`, give the DM channel's `channel_id` (`/aurora conversation show scope:dm` lists them)."
        )
        expect(replyText(yield* h.run("owner", "conversation reset", { scope: "dm", channel_id: dmKey.channelId }))).toContain(
          "Direct messages are off"
        )
        yield* Effect.flatMap(SettingsStore, (s) => s.setDmAgent("agent-dm"))
        expect(Option.isSome(yield* store.get(dmKey))).toBe(true)
        expect(replyText(yield* h.run("owner", "conversation reset", { scope: "dm", channel_id: dmKey.channelId }))).toBe(
          `✅ Forgot the conversation \`conv-dm\` of DM channel \`${dmKey.channelId}\`: the next mention there starts a new ` +
            "conversation with agent `agent-dm`. The old one stays on the Letta server with its messages; the agent's memory is unchanged."
        )
        expect(yield* store.get(dmKey)).toEqual(Option.none())
      })
    ))

  it.scoped("members are denied and nothing is forgotten", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        yield* enable()
        const store = yield* conversations
        yield* store.put(guildConversation(ids.channel), "conv-1", created)
        expect(replyText(yield* h.run("member", "conversation reset"))).toBe(
          "⛔ You need the **Manage Server** permission to use `/aurora conversation reset`."
        )
        expect(Option.isSome(yield* store.get(guildConversation(ids.channel)))).toBe(true)
      })
    ))
})

describe("/aurora config conversations and parallel", () => {
  it.scoped("conversations: channel or shared, stored, and the queue is told", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const changed = yield* Ref.make(0)
        const settings = Effect.map(Effect.flatMap(SettingsStore, (s) => s.guild(ids.guild)), (g) => g.settings)
        for (const bad of ["both", "Shared", true, 1]) {
          expect(replyText(yield* h.run("admin", "config conversations", { value: bad }))).toBe(
            `❌ **conversations** must be channel or shared (got \`${String(bad)}\`). Nothing was changed.`
          )
        }
        expect(yield* Ref.get(changed)).toBe(0)
        const reply = yield* countingLimitsChanged(changed, h.run("admin", "config conversations", { value: "shared" }))
        expect(replyText(reply)).toBe(
          "✅ **conversations** is now **shared**. Applies to mentions queued from now on (queued ones keep their mode). " +
            "In `channel` mode each channel and thread starts its own conversation at its next mention."
        )
        expect((yield* settings).conversations).toBe("shared")
        expect(yield* Ref.get(changed)).toBe(1)
        // The guild scope leaves the DMs' mode alone.
        expect((yield* Effect.flatMap(SettingsStore, (s) => s.global)).dmConversations).toBe("channel")
      })
    ))

  it.scoped("conversations scope:dm is owner-only and sets the DMs' mode, not the guild's", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const changed = yield* Ref.make(0)
        const store = yield* SettingsStore
        expect(replyText(yield* h.run("admin", "config conversations", { value: "shared", scope: "dm" }))).toBe(
          "⛔ Only Aurora's owners can use `/aurora config conversations scope:dm`."
        )
        expect((yield* store.global).dmConversations).toBe("channel")
        expect(replyText(yield* h.run("owner", "config conversations", { value: "nope", scope: "dm" }))).toContain(
          "**conversations** must be channel or shared (got `nope`)"
        )
        expect(replyText(yield* h.run("owner", "config conversations", { value: "shared", scope: "everywhere" }))).toBe(
          "❌ `scope` must be `guild` or `dm`."
        )
        const reply = yield* countingLimitsChanged(
          changed,
          h.run("owner", "config conversations", { value: "shared", scope: "dm" })
        )
        expect(replyText(reply)).toBe(
          "✅ **conversations** for direct messages is now **shared**. Applies to direct messages queued from now on " +
            "(queued ones keep their mode)."
        )
        expect((yield* store.global).dmConversations).toBe("shared")
        expect((yield* store.guild(ids.guild)).settings.conversations).toBe("channel")
        expect(yield* Ref.get(changed)).toBe(1)
        const log = (yield* h.logLines).find((line) => line.annotations["setting"] === "dmConversations")
        expect(log?.annotations["value"]).toBe("shared")
      })
    ))

  it.scoped("parallel: 1 to 32 accepted, 0, 33 and 2.5 refused naming the range; a change tells the queue", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const changed = yield* Ref.make(0)
        const parallel = Effect.map(Effect.flatMap(SettingsStore, (s) => s.guild(ids.guild)), (g) => g.settings.parallel)
        for (const bad of [0, 33, 2.5, "many"]) {
          expect(replyText(yield* h.run("admin", "config parallel", { value: bad }))).toBe(
            `❌ **parallel** must be a whole number between 1 and 32 (got \`${String(bad)}\`). Nothing was changed.`
          )
          expect(yield* parallel).toBe(defaultGuildSettings.parallel)
        }
        for (const good of [1, 32]) {
          const reply = yield* countingLimitsChanged(changed, h.run("admin", "config parallel", { value: good }))
          expect(replyText(reply)).toBe(
            `✅ **parallel** is now **${good}**. Applies now: at most this many runs of the agent at once, each in its own ` +
              "channel (`channel` mode)."
          )
          expect(yield* parallel).toBe(good)
        }
        expect(yield* Ref.get(changed)).toBe(2)
        expect(replyText(yield* h.run("member", "config parallel", { value: 4 }))).toBe(
          "⛔ You need the **Manage Server** permission to use `/aurora config parallel`."
        )
        expect(yield* parallel).toBe(32)
      })
    ))
})

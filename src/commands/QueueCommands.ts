/** `/aurora queue status [scope]` and `/aurora queue clear`. */
import { channelMention } from "discord.js"
import { Clock, Effect } from "effect"
import { Partition } from "../domain/Event.js"
import { SettingRules } from "../domain/Settings.js"
import { DeadLetters } from "../services/queue/DeadLetters.js"
import { EventQueue, type PartitionStats, type QueueStats } from "../services/queue/EventQueue.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"
import { requireAccess } from "./Access.js"
import { code, formatAge, plural } from "./Format.js"
import { Colors, type Invocation, Reply, type ReplyEmbed } from "./Invocation.js"
import { guildOf, scopeOf } from "./Options.js"

/** Channel lines shown before "… and N more": an embed description holds 4096 characters. */
const maxChannelLines = 25

/** Run lines shown before "… and N more": an embed field holds 1024 characters. */
const maxRunLines = 10

export interface QueueView {
  readonly title: string
  readonly partition: Partition
  readonly capacity: number
  /** The per-agent cap (`parallel`) of the partition. */
  readonly parallel: number
  /** Paused by a guild or global pause, stored or in the queue. */
  readonly paused: boolean
  /** Dead letters kept for the partition; null when the store could not be read. */
  readonly deadLetters: number | null
}

/**
 * The status embed of one partition: `Pending: N`, then one line per channel; the runs in flight,
 * each with the conversation it holds (its channel's own, or the agent's shared one); per agent of
 * those runs, its runs in flight everywhere against its cap; the oldest age.
 */
export const queueEmbed = (view: QueueView, stats: QueueStats, now: number): ReplyEmbed => {
  const key = Partition.key(view.partition)
  const partition: PartitionStats | undefined = stats.partitions.find((p) => p.key === key)
  const pending = partition?.pending ?? 0
  const channels = partition?.channels ?? []
  const inFlight = stats.inFlight.filter((run) => run.partition === key)
  const runLines = [
    ...inFlight.slice(0, maxRunLines).map((run) =>
      `${channelMention(run.channelId)} for ${formatAge(now - run.startedAt)} (${
        run.conversationMode === "channel" ? "channel" : "shared"
      } conversation)`
    ),
    ...(inFlight.length > maxRunLines ? [`… and ${plural(inFlight.length - maxRunLines, "more run")}`] : [])
  ]
  const agentIds = new Set(inFlight.map((run) => run.agentId))
  const agentLines = stats.agents.filter((agent) => agentIds.has(agent.agentId)).map((agent) =>
    `${code(agent.agentId)}: ${agent.inFlight} in flight (at most ${view.parallel})`
  )
  const lines = [
    `Pending: ${pending}`,
    ...channels.slice(0, maxChannelLines).map((channel) => `${channelMention(channel.channelId)}: ${channel.pending}`),
    ...(channels.length > maxChannelLines ? [`… and ${plural(channels.length - maxChannelLines, "more channel")}`] : [])
  ]
  const oldest = partition?.oldestEnqueuedAt ?? null
  return {
    title: view.title,
    description: lines.join("\n"),
    color: view.paused ? Colors.warning : pending >= (partition?.capacity ?? view.capacity) ? Colors.error : Colors.ok,
    fields: [
      { name: "Capacity", value: `${partition?.capacity ?? view.capacity} pending events`, inline: true },
      {
        name: "In flight",
        value: inFlight.length === 0 ? "0" : runLines.join("\n"),
        inline: true
      },
      ...(agentLines.length === 0 ? [] : [{ name: "Runs per agent", value: agentLines.join("\n"), inline: true }]),
      { name: "Oldest pending", value: oldest === null ? "—" : `${formatAge(now - oldest)} ago`, inline: true },
      { name: "Dispatch", value: view.paused ? "⏸️ paused (events are still queued)" : "▶️ active", inline: true },
      {
        name: "Dead letters",
        value: view.deadLetters === null
          ? "unavailable (the store could not be read)"
          : view.deadLetters === 0
          ? "0"
          : `${view.deadLetters} (see /aurora queue failed)`,
        inline: true
      }
    ]
  }
}

export const queueStatus = (invocation: Invocation) =>
  Effect.gen(function*() {
    const guildId = yield* guildOf(invocation)
    const scope = yield* scopeOf(invocation, "dm")
    if (scope === "dm") yield* requireAccess(invocation, "owner", "/aurora queue status scope:dm")
    const queue = yield* EventQueue
    const store = yield* SettingsStore
    const stats = yield* queue.stats
    const now = yield* Clock.currentTimeMillis
    const global = yield* store.global
    const globalPaused = global.globalPause || stats.globalPaused
    const deadLetterCount = (partition: Partition) =>
      Effect.flatMap(DeadLetters, (letters) => letters.list(partition, 0)).pipe(
        Effect.map((page): number | null => page.total),
        Effect.catchAll((error) => Effect.logError("queue status: could not count the dead letters", error).pipe(Effect.as(null)))
      )
    if (scope === "dm") {
      const partition = Partition.dm
      const queuePaused = yield* queue.isPaused(partition)
      return Reply.embed(queueEmbed(
        {
          title: "Direct-message queue",
          partition,
          capacity: SettingRules.queuesize.default,
          parallel: SettingRules.parallel.default,
          paused: globalPaused || queuePaused,
          deadLetters: yield* deadLetterCount(partition)
        },
        stats,
        now
      ))
    }
    const partition = Partition.guild(guildId)
    const state = yield* store.guild(guildId)
    const queuePaused = yield* queue.isPaused(partition)
    return Reply.embed(queueEmbed(
      {
        title: "Queue of this server",
        partition,
        capacity: state.settings.queuesize,
        parallel: state.settings.parallel,
        paused: globalPaused || state.paused || queuePaused,
        deadLetters: yield* deadLetterCount(partition)
      },
      stats,
      now
    ))
  })

export const queueClear = (invocation: Invocation) =>
  Effect.gen(function*() {
    const guildId = yield* guildOf(invocation)
    const queue = yield* EventQueue
    const dropped = yield* queue.clear(Partition.guild(guildId))
    yield* Effect.logInfo("queue cleared by command").pipe(Effect.annotateLogs({ dropped }))
    return Reply.text(
      `🗑️ Dropped ${plural(dropped, "pending event")} of this server. Runs already in flight finish normally.`
    )
  })

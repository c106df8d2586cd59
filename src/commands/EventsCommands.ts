/**
 * `/aurora events status|pause|resume|errors|resetcircuit`. A pause is written to the settings
 * (so it survives a restart) and applied to the queue at once; pausing stops dispatch, not intake:
 * mentions are queued meanwhile (up to `queuesize`) and a resume sends them, oldest first. A reset
 * of the breaker releases the events it held at once (the breaker signals it, see BreakerRelease).
 */
import { time, TimestampStyles } from "discord.js"
import { Clock, Effect } from "effect"
import { Partition } from "../domain/Event.js"
import type { GlobalSettings, GuildState } from "../domain/Settings.js"
import { CircuitBreaker, renderBreakerState } from "../services/health/CircuitBreaker.js"
import { type ErrorSnapshot, ErrorStats, sortedByType } from "../services/health/ErrorStats.js"
import { EventQueue } from "../services/queue/EventQueue.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"
import { isOwner, requireAccess } from "./Access.js"
import { clip, code, formatAge, formatRate } from "./Format.js"
import { Colors, type Invocation, Reply } from "./Invocation.js"
import { guildOf, scopeOf } from "./Options.js"

const agentLine = (state: GuildState): string => {
  if (state.enabled && state.agentId !== null) return `✅ enabled — agent ${code(state.agentId)}`
  if (state.agentId !== null) return `⛔ disabled (agent ${code(state.agentId)} is kept)`
  return "⛔ not set up — use `/aurora enable agent_id:`"
}

const pauseLine = (state: GuildState, global: GlobalSettings, queueGuildPaused: boolean, queueGlobalPaused: boolean) => {
  const reasons = [
    ...(global.globalPause || queueGlobalPaused ? ["all servers (global pause)"] : []),
    ...(state.paused || queueGuildPaused ? ["this server"] : [])
  ]
  return reasons.length === 0 ? "▶️ active" : `⏸️ paused: ${reasons.join(", ")}`
}

export const errorRateLine = (snapshot: ErrorSnapshot): string =>
  `${formatRate(snapshot.errorRate)} overall (${snapshot.errors}/${snapshot.total}) · ` +
  `${formatRate(snapshot.recent5m.rate)} last 5 min (${snapshot.recent5m.errors}/${snapshot.recent5m.total})`

export const eventsStatus = (invocation: Invocation) =>
  Effect.gen(function*() {
    const guildId = yield* guildOf(invocation)
    const store = yield* SettingsStore
    const queue = yield* EventQueue
    const state = yield* store.guild(guildId)
    const global = yield* store.global
    const breaker = yield* Effect.flatMap(CircuitBreaker, (b) => b.state)
    const stats = yield* queue.stats
    const errors = yield* Effect.flatMap(ErrorStats, (s) => s.snapshot)
    const now = yield* Clock.currentTimeMillis
    const key = Partition.key(Partition.guild(guildId))
    const partition = stats.partitions.find((p) => p.key === key)
    const inFlight = stats.inFlight.filter((run) => run.partition === key).length
    const oldest = partition?.oldestEnqueuedAt ?? null
    const paused = pauseLine(state, global, partition?.paused ?? false, stats.globalPaused)
    const color = breaker._tag === "Open" || !state.enabled
      ? Colors.error
      : breaker._tag === "HalfOpen" || paused !== "▶️ active"
      ? Colors.warning
      : Colors.ok
    return Reply.embed({
      title: "Aurora status",
      color,
      fields: [
        { name: "Aurora in this server", value: agentLine(state), inline: false },
        { name: "Dispatch", value: paused, inline: true },
        { name: "Circuit breaker", value: renderBreakerState(breaker), inline: true },
        {
          name: "Queue",
          value: `Pending: ${partition?.pending ?? 0} / ${partition?.capacity ?? state.settings.queuesize}` +
            ` · in flight: ${inFlight}` + (oldest === null ? "" : ` · oldest: ${formatAge(now - oldest)}`),
          inline: false
        },
        { name: "Error rate (all servers)", value: errorRateLine(errors), inline: false }
      ]
    })
  })

const setPause = (paused: boolean) => (invocation: Invocation) =>
  Effect.gen(function*() {
    const guildId = yield* guildOf(invocation)
    const scope = yield* scopeOf(invocation, "global")
    const verb = paused ? "pause" : "resume"
    const store = yield* SettingsStore
    const queue = yield* EventQueue
    if (scope === "global") {
      yield* requireAccess(invocation, "owner", `/aurora events ${verb} scope:global`)
      yield* store.setGlobalPause(paused)
      yield* paused ? queue.pause("global") : queue.resume("global")
      yield* Effect.logInfo(paused ? "dispatch paused in all servers" : "dispatch resumed in all servers")
      return Reply.text(
        paused
          ? "⏸️ Paused in **all servers**. Mentions are still queued; nothing is dispatched until `/aurora events resume scope:global`."
          : "▶️ Resumed in all servers (servers paused on their own stay paused)."
      )
    }
    const partition = Partition.guild(guildId)
    yield* store.setPaused(guildId, paused)
    // Read before the resume: the dispatch loop starts taking events the moment it is resumed.
    const queued = (yield* queue.stats).partitions.find((p) => p.key === Partition.key(partition))
    yield* paused ? queue.pause(partition) : queue.resume(partition)
    yield* Effect.logInfo(paused ? "dispatch paused in the guild" : "dispatch resumed in the guild")
    if (paused) {
      const capacity = queued?.capacity ?? (yield* store.guild(guildId)).settings.queuesize
      return Reply.text(
        `⏸️ Paused in this server. Mentions are still queued (up to ${capacity}); nothing is dispatched until \`/aurora events resume\`.`
      )
    }
    const pending = queued?.pending ?? 0
    const global = yield* store.global
    const stillGlobal = global.globalPause || (yield* queue.isPaused("global"))
    return Reply.text(
      stillGlobal
        ? "▶️ Resumed in this server, but a **global pause** is still on: nothing is dispatched until an owner lifts it."
        : pending === 0
        ? "▶️ Resumed in this server."
        : `▶️ Resumed in this server: ${pending} queued message(s) go to the agent now, oldest first.`
    )
  })

export const eventsPause = setPause(true)
export const eventsResume = setPause(false)

/** Recent operations shown in `events errors`. */
const recentShown = 10

export const eventsErrors = (invocation: Invocation) =>
  Effect.gen(function*() {
    yield* guildOf(invocation)
    const snapshot = yield* Effect.flatMap(ErrorStats, (s) => s.snapshot)
    // Statistics span every server; error details may name another server's agent or messages,
    // so only owners see them.
    const showDetails = yield* isOwner(invocation)
    const types = sortedByType(snapshot.byType).slice(0, 10)
    const recent = snapshot.recentOperations.slice(0, recentShown).map((op) => {
      const outcome = op.outcome === "success" ? "✅" : `❌ ${code(op.outcome.errorType, 60)}`
      const detail = showDetails && op.detail !== undefined ? ` — ${code(op.detail, 80)}` : ""
      return `${time(new Date(op.at), TimestampStyles.RelativeTime)} ${op.kind} ${outcome}${detail}`
    })
    return Reply.embed({
      title: "Aurora errors (all servers)",
      color: snapshot.recent5m.rate > 0.5 ? Colors.error : snapshot.recent5m.errors > 0 ? Colors.warning : Colors.ok,
      fields: [
        { name: "Operations", value: `${snapshot.total} total · ${snapshot.errors} errors`, inline: false },
        { name: "Error rate", value: errorRateLine(snapshot), inline: false },
        {
          name: "By error type",
          value: types.length === 0 ? "none" : types.map(([type, n]) => `${code(type, 60)}: ${n}`).join("\n"),
          inline: false
        },
        {
          name: "Recent operations (newest first)",
          value: recent.length === 0 ? "none yet" : clip(recent.join("\n"), 1024),
          inline: false
        }
      ]
    })
  })

export const eventsResetCircuit = (invocation: Invocation) =>
  Effect.gen(function*() {
    yield* guildOf(invocation)
    const breaker = yield* CircuitBreaker
    const before = yield* breaker.state
    yield* breaker.reset
    const after = yield* breaker.state
    return Reply.text(
      before._tag === "Closed"
        ? `Circuit breaker was already ${renderBreakerState(after)}; its failure count is cleared.`
        : `Circuit breaker reset: ${renderBreakerState(before)} → ${renderBreakerState(after)}. Held events are dispatched now.`
    )
  })

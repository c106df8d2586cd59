/**
 * Conversations (#14): one agent, one guild of 20 channels, one mention in each, Letta taking 1 s
 * per run, `parallel` 32. In `channel` mode each channel runs in its own Letta conversation, so
 * the 20 runs overlap (makespan ~ one run); in `shared` mode they queue for the agent's one
 * conversation (makespan ~ 20 runs). Makespan: first mention sent -> last run finished at the fake.
 *
 * A warm-up mention per channel (instant runs) comes first, as in bench/parallelism.ts: in
 * `channel` mode it creates the 20 conversations, so the measured round reuses them and any
 * further create would show up in `conversationsCreated`. The fake Letta refuses a second send on
 * a conversation while one is in flight (409) and records it: `maxConcurrentSends` is the most
 * sends Aurora ever had on one conversation at once (1 = never overlapped).
 */
import { Duration, Effect } from "effect"
import type { ConversationMode } from "../src/domain/Event.js"
import { FakeDiscord } from "../test/fakes/FakeDiscord.js"
import { Behaviours, makeFakeLetta } from "../test/fakes/FakeLetta.js"
import { spawnBot } from "./BotProcess.js"
import { offerBurst } from "./load.js"
import { makeWorld } from "./world.js"

export const Channels = 20
export const RunMs = 1000
export const Parallel = 32
const AgentId = "agent-bench-conversations"

export interface ConversationsResult {
  readonly mode: ConversationMode
  /** First mention sent -> last run finished (NaN when not every run finished in time). */
  readonly makespanMs: number
  /** Runs of the measured round that finished. */
  readonly finished: number
  /** Distinct conversations the measured round's runs went to (0 in `shared` mode: the agents route). */
  readonly conversationsUsed: number
  /** Conversations created over the whole scenario (warm-up included). */
  readonly conversationsCreated: number
  /** The most sends on one conversation at once, over the whole scenario (0 when none was used). */
  readonly maxConcurrentSends: number
  /** 409 busy answers the fake gave. */
  readonly busyAnswers: number
  /** Most runs of the agent in flight at once at the fake. */
  readonly maxInFlight: number
}

export const runConversations = (mode: ConversationMode) =>
  Effect.scoped(Effect.gen(function*() {
    const world = makeWorld(1, Channels, AgentId)
    const discord = yield* FakeDiscord.make({ guilds: world.guilds })
    const letta = yield* makeFakeLetta({ agents: { [AgentId]: AgentId } })
    yield* spawnBot({
      bot: "aurora",
      discordApiUrl: discord.apiUrl,
      discordToken: discord.token,
      lettaUrl: letta.url,
      agents: world.agents,
      ratelimit: 0.5,
      conversations: mode,
      parallel: Parallel
    })

    // Warm-up with instant runs (and, in channel mode, the conversations created), then the slow Letta.
    yield* offerBurst(discord, world, 0, Channels)
    yield* letta.awaitRunsFinished(Channels).pipe(Effect.timeout(Duration.seconds(30)), Effect.ignore)
    yield* Effect.sleep(Duration.millis(700))
    yield* letta.setDefault(Behaviours.run({ delayMs: RunMs }))

    const finishedBefore = (yield* letta.runs).filter((run) => run.finishedAt !== undefined).length
    const startedAt = Date.now()
    yield* offerBurst(discord, world, Channels, Channels)
    // Bounded: shared mode needs ~20 s; a run that never ends is reported as a missing makespan.
    yield* letta.awaitRunsFinished(finishedBefore + Channels).pipe(
      Effect.timeout(Duration.millis(RunMs * Channels * 2 + 10_000)),
      Effect.ignore
    )
    const measured = (yield* letta.runs).filter((run) => run.startedAt >= startedAt && run.finishedAt !== undefined)
    const last = measured.reduce((m, run) => Math.max(m, run.finishedAt ?? 0), startedAt)
    const used = new Set(measured.flatMap((run) => (run.conversationId === undefined ? [] : [run.conversationId])))
    const result: ConversationsResult = {
      mode,
      makespanMs: measured.length === Channels ? last - startedAt : NaN,
      finished: measured.length,
      conversationsUsed: used.size,
      conversationsCreated: (yield* letta.conversations).length,
      maxConcurrentSends: yield* letta.maxConcurrentSends(),
      busyAnswers: (yield* letta.busyAnswers).length,
      maxInFlight: yield* letta.maxInFlight(AgentId)
    }
    return result
  }))

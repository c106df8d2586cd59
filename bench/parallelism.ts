/**
 * Parallelism: 50 guilds, one mention each, Letta taking `runMs` per run. With an agent per
 * guild the runs overlap (makespan ~ one run); with one agent for all in `shared` conversations
 * mode, Aurora must run them one at a time, in the agent's one conversation (makespan ~ 50 runs).
 * (One agent in `channel` mode would run up to `parallel` of them at once: bench/conversations.ts
 * measures that.) Makespan: first mention sent -> last run finished at the fake.
 */
import { Duration, Effect } from "effect"
import type { ConversationMode } from "../src/domain/Event.js"
import { FakeDiscord } from "../test/fakes/FakeDiscord.js"
import { Behaviours, makeFakeLetta } from "../test/fakes/FakeLetta.js"
import { spawnBot } from "./BotProcess.js"
import { offerBurst } from "./load.js"
import { makeWorld } from "./world.js"

export interface ParallelismResult {
  readonly agents: number
  readonly mode: ConversationMode
  readonly runMs: number
  readonly makespansMs: ReadonlyArray<number>
  /** Most runs the fake Letta saw at once (all agents), and for one agent. */
  readonly maxInFlight: number
  readonly maxInFlightPerAgent: number
}

const Guilds = 50

export const runParallelism = (options: {
  /** One agent for all 50 guilds (otherwise one each). */
  readonly oneAgent: boolean
  readonly mode: ConversationMode
  readonly runMs: number
  readonly rounds: number
}) =>
  Effect.scoped(Effect.gen(function*() {
    const world = makeWorld(Guilds, 1, options.oneAgent ? "agent-bench-shared" : undefined)
    const agentIds = [...new Set(Object.values(world.agents))]
    const discord = yield* FakeDiscord.make({ guilds: world.guilds })
    const letta = yield* makeFakeLetta({ agents: Object.fromEntries(agentIds.map((a) => [a, a])) })
    yield* spawnBot({
      bot: "aurora",
      discordApiUrl: discord.apiUrl,
      discordToken: discord.token,
      lettaUrl: letta.url,
      agents: world.agents,
      ratelimit: 0.5,
      conversations: options.mode
    })

    // Warm-up with instant runs, then the slow Letta.
    yield* offerBurst(discord, world, 0, Guilds)
    yield* letta.awaitRunsFinished(Guilds).pipe(Effect.timeout(Duration.seconds(30)), Effect.ignore)
    yield* Effect.sleep(Duration.millis(700))
    yield* letta.setDefault(Behaviours.run({ delayMs: options.runMs }))

    const makespans: Array<number> = []
    for (let round = 1; round <= options.rounds; round++) {
      const finishedBefore = (yield* letta.runs).filter((run) => run.finishedAt !== undefined).length
      const startedAt = Date.now()
      yield* offerBurst(discord, world, round * Guilds, Guilds)
      yield* letta.awaitRunsFinished(finishedBefore + Guilds).pipe(
        Effect.timeout(Duration.millis(options.runMs * Guilds * 3 + 10_000)),
        Effect.ignore
      )
      const finished = (yield* letta.runs).filter((run) => run.startedAt >= startedAt && run.finishedAt !== undefined)
      const last = finished.reduce((m, run) => Math.max(m, run.finishedAt ?? 0), startedAt)
      makespans.push(finished.length === Guilds ? last - startedAt : NaN)
      yield* Effect.sleep(Duration.millis(700))
    }
    const result: ParallelismResult = {
      agents: agentIds.length,
      mode: options.mode,
      runMs: options.runMs,
      makespansMs: makespans,
      maxInFlight: yield* letta.maxInFlight(),
      maxInFlightPerAgent: Math.max(...(yield* Effect.forEach(agentIds, (id) => letta.maxInFlight(id))))
    }
    return result
  }))

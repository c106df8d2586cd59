/**
 * One line at start-up telling whether Letta answers. Aurora runs either way: an unreachable Letta
 * only means events wait in the queue until it answers.
 */
import { Effect, Layer } from "effect"
import { LettaClient } from "../services/letta/LettaClient.js"

export const LettaReachabilityLive = Layer.effectDiscard(
  Effect.gen(function*() {
    const letta = yield* LettaClient
    const { url, source } = yield* letta.current
    const health = yield* letta.health
    if (health._tag === "Reachable") yield* Effect.logInfo(`Letta at ${url} (${source}) answers`)
    else {
      yield* Effect.logWarning(
        `Letta at ${url} (${source}) is unreachable: ${health.reason}; events will wait in the queue until it answers`
      )
    }
  })
)

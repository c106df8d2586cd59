/**
 * One line at start-up telling whether Letta answers. Aurora runs either way: an unreachable Letta
 * only means events wait in the queue until it answers. The URL is shown without its secrets
 * (LETTA_BASE_URL may carry credentials: see ShownUrl).
 */
import { Effect, Layer } from "effect"
import { shownUrl } from "../domain/ShownUrl.js"
import { LettaClient } from "../services/letta/LettaClient.js"

export const LettaReachabilityLive = Layer.effectDiscard(
  Effect.gen(function*() {
    const letta = yield* LettaClient
    const current = yield* letta.current
    const url = shownUrl(current.url)
    const source = current.source
    const health = yield* letta.health
    if (health._tag === "Reachable") yield* Effect.logInfo(`Letta at ${url} (${source}) answers`)
    else {
      yield* Effect.logWarning(
        `Letta at ${url} (${source}) is unreachable: ${health.reason}; events will wait in the queue until it answers`
      )
    }
  })
)

/**
 * The persisted `lettaurl` override: applied to the Letta endpoint at start, then every later
 * change of the global settings is followed, so `/aurora lettaurl` takes effect without a restart.
 */
import { Effect, Layer, Stream } from "effect"
import { LettaEndpoint } from "../services/letta/LettaClient.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"

export const LettaUrlFollowerLive = Layer.scopedDiscard(
  Effect.gen(function*() {
    const settings = yield* SettingsStore
    const endpoint = yield* LettaEndpoint
    const changes = yield* settings.subscribe
    yield* endpoint.setOverride((yield* settings.global).lettaBaseUrl)
    yield* Stream.fromQueue(changes).pipe(
      Stream.runForEach((change) =>
        change._tag === "GlobalChanged" ? endpoint.setOverride(change.global.lettaBaseUrl) : Effect.void
      ),
      Effect.forkScoped
    )
  })
)

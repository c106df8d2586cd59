/**
 * Secrets in a LETTA_BASE_URL and the API key never reach a log line or a failure's reason: the
 * start-up reachability line (a real connection failure of the real client) and LettaClient.redact.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger } from "effect"
import { LettaReachabilityLive } from "../../../src/programs/LettaReachability.js"
import { LettaClient, LettaEndpoint } from "../../../src/services/letta/LettaClient.js"
import { configFrom } from "../../fakes/config.js"
import { freePort } from "../../fakes/freePort.js"
import { captureLogs, type LogLine } from "../../fakes/logs.js"

const clientAt = (url: string) =>
  LettaClient.Default.pipe(
    Layer.provideMerge(LettaEndpoint.Default),
    Layer.provide(configFrom({ LETTA_BASE_URL: url, LETTA_API_KEY: "sk-let-s3cret-key" })),
    Layer.provide(Logger.remove(Logger.defaultLogger))
  )

describe("LettaClient redaction", () => {
  it.live("the start-up reachability line shows LETTA_BASE_URL without its credentials or token", () =>
    Effect.gen(function*() {
      const port = yield* freePort // nothing listens there
      const lines: Array<LogLine> = []
      yield* Effect.scoped(Layer.build(LettaReachabilityLive)).pipe(
        Effect.provide(clientAt(`http://alice:s3cret@127.0.0.1:${port}/?token=s3cret`)),
        Effect.provide(captureLogs(lines))
      )
      expect(lines.map((l) => l.message)).toEqual([
        `Letta at http://redacted@127.0.0.1:${port}/?token=redacted (env) is unreachable: Connection error.; ` +
        "events will wait in the queue until it answers"
      ])
    }))

  it.effect("redact removes the key and any //user:password@ from text", () =>
    Effect.gen(function*() {
      const letta = yield* LettaClient
      expect(letta.redact("GET http://bob:pw@h/v1 with sk-let-s3cret-key failed (see https://x:y@z/)")).toBe(
        "GET http://redacted@h/v1 with <redacted> failed (see https://redacted@z/)"
      )
    }).pipe(Effect.provide(clientAt("http://127.0.0.1:1"))))
})

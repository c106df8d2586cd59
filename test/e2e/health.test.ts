import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { bounded, freePort, startApp, world } from "./harness.js"

const counter = (text: string, name: string): number => {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(" ") + 1))
}

const get = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, text: await response.text(), type: response.headers.get("content-type") }
  })

describe("health and metrics over HTTP, end to end", () => {
  it.scopedLive("/healthz is ok when the gateway and database are up; a mention moves the counters", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const app = yield* startApp({
        letta: { agents: { "agent-h": "Health Agent" } },
        env: { AURORA_HTTP_PORT: String(port) }
      })
      const base = `http://127.0.0.1:${port}`
      const health = yield* get(`${base}/healthz`)
      expect(health.status).toBe(200)
      expect(JSON.parse(health.text)).toMatchObject({ status: "ok", gateway: "ready", db: "ok", breaker: "closed" })

      const before = yield* get(`${base}/metrics`)
      expect(before.type).toContain("text/plain")
      const received0 = counter(before.text, "aurora_messages_received_total")
      const enqueued0 = counter(before.text, "aurora_events_enqueued_total")
      const success0 = counter(before.text, "aurora_runs_total{outcome=\"success\"}")

      yield* app.settings.enable(world.guildId, "agent-h")
      yield* app.discord.sendMessage({
        channelId: world.general,
        content: `<@${world.bot.id}> count me`,
        mentions: [world.bot.id]
      })
      yield* bounded("the run", app.letta.awaitRunsFinished(1))
      // The run is reported finished by the fake before Aurora has read the end of the stream.
      yield* bounded(
        "the success counter",
        Effect.gen(function*() {
          const after = yield* get(`${base}/metrics`)
          return counter(after.text, "aurora_runs_total{outcome=\"success\"}") > success0 ? after : yield* Effect.fail("not yet")
        }).pipe(Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("15 seconds"))))
      )
      const after = yield* get(`${base}/metrics`)
      expect(counter(after.text, "aurora_messages_received_total")).toBeGreaterThan(received0)
      expect(counter(after.text, "aurora_events_enqueued_total")).toBe(enqueued0 + 1)
      expect(counter(after.text, "aurora_tool_calls_total{executor=\"agent\",status=\"called\",tool=\"discord_send\"}"))
        .toBeGreaterThanOrEqual(1)
    }))
})

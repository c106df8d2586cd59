import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Logger, LogLevel } from "effect"
import { logLevel } from "../../src/domain/Config.js"
import { annotateLogsUnlessSet, jsonLineLogger, logAnnotated } from "../../src/services/health/Log.js"

const capture = (lines: Array<string>) =>
  Logger.replace(Logger.defaultLogger, jsonLineLogger.pipe(Logger.map((line) => lines.push(line))))

describe("JSON log lines", () => {
  it.effect("one object per line with level, message, timestamp and flattened annotations", () => {
    const lines: Array<string> = []
    return Effect.gen(function*() {
      yield* Effect.logWarning("queue full").pipe(
        Effect.annotateLogs({ guildId: "1", channelId: "2", messageId: "3", agentId: "agent-x", runId: "run-1" }),
        Effect.withLogSpan("listen")
      )
      expect(lines).toHaveLength(1)
      const line = lines[0]!
      expect(line.includes("\n")).toBe(false)
      const parsed = JSON.parse(line)
      expect(parsed).toMatchObject({
        level: "warning",
        message: "queue full",
        guildId: "1",
        channelId: "2",
        messageId: "3",
        agentId: "agent-x",
        runId: "run-1"
      })
      expect(new Date(parsed.timestamp).toISOString()).toBe(parsed.timestamp)
      expect(parsed.spans).toHaveProperty("listen")
    }).pipe(Effect.provide(capture(lines)))
  })

  it.effect("a failure's cause is included, a multi-line message stays on one line", () => {
    const lines: Array<string> = []
    return Effect.gen(function*() {
      yield* Effect.fail(new Error("boom")).pipe(
        Effect.catchAllCause((cause) => Effect.logError("run failed\nsecond line", cause))
      )
      expect(lines).toHaveLength(1)
      const parsed = JSON.parse(lines[0]!)
      expect(parsed.level).toBe("error")
      expect(parsed.message).toBe("run failed\nsecond line")
      expect(parsed.cause).toContain("boom")
    }).pipe(Effect.provide(capture(lines)))
  })

  it.effect("logAnnotated writes its annotations with the line, and nothing when the level filters it out", () => {
    const lines: Array<string> = []
    return Effect.gen(function*() {
      yield* logAnnotated(LogLevel.Info, "tool call discord_send", { tool: "discord_send", toolCallId: "c1" }).pipe(
        Effect.annotateLogs({ runId: "run-1" })
      )
      // Filtered out: the annotations are not even read (that is the point: no cost for a debug line).
      let read = false
      const watched = {
        get totalTokens() {
          read = true
          return 150
        }
      }
      yield* logAnnotated(LogLevel.Debug, "usage", watched)
      expect(read).toBe(false)
      expect(lines).toHaveLength(1)
      expect(JSON.parse(lines[0]!)).toMatchObject({
        level: "info",
        message: "tool call discord_send",
        tool: "discord_send",
        toolCallId: "c1",
        runId: "run-1"
      })
      // The line's own annotations do not leak into the next line.
      yield* Effect.logWarning("next")
      expect(JSON.parse(lines[1]!)).not.toHaveProperty("tool")
      yield* logAnnotated(LogLevel.Debug, "usage", { totalTokens: 150 }).pipe(Logger.withMinimumLogLevel(LogLevel.Debug))
      expect(JSON.parse(lines[2]!)).toMatchObject({ level: "debug", message: "usage", totalTokens: 150 })
    }).pipe(Effect.provide(capture(lines)), Logger.withMinimumLogLevel(LogLevel.Info))
  })

  it.effect("annotateLogsUnlessSet: the lines carry the annotations whether the caller set them, set others or none", () => {
    const lines: Array<string> = []
    return Effect.gen(function*() {
      const inner = annotateLogsUnlessSet(Effect.logInfo("reply chain built"), { messageId: "m1" })
      yield* inner
      yield* Effect.annotateLogs(inner, { messageId: "m1", channelId: "c1" })
      yield* Effect.annotateLogs(inner, { messageId: "m0" })
      yield* annotateLogsUnlessSet(Effect.logInfo("two"), { messageId: "m1", channelId: "c2" }).pipe(
        Effect.annotateLogs({ messageId: "m1" })
      )
      yield* Effect.logInfo("after")
      expect(lines.map((line) => JSON.parse(line))).toMatchObject([
        { message: "reply chain built", messageId: "m1" },
        { message: "reply chain built", messageId: "m1", channelId: "c1" },
        { message: "reply chain built", messageId: "m1" },
        { message: "two", messageId: "m1", channelId: "c2" },
        { message: "after" }
      ])
      expect(JSON.parse(lines[4]!)).not.toHaveProperty("messageId")
    }).pipe(Effect.provide(capture(lines)))
  })

  it.effect("LOG_LEVEL maps names to levels and rejects unknown ones", () =>
    Effect.gen(function*() {
      const read = (value: string) => Effect.withConfigProvider(logLevel, ConfigProvider.fromMap(new Map([["LOG_LEVEL", value]])))
      expect(yield* read("debug")).toBe(LogLevel.Debug)
      expect(yield* read("warning")).toBe(LogLevel.Warning)
      expect(yield* read("error")).toBe(LogLevel.Error)
      const bad = yield* Effect.either(read("loud"))
      expect(bad._tag).toBe("Left")
      const unset = yield* Effect.withConfigProvider(logLevel, ConfigProvider.fromMap(new Map()))
      expect(unset).toBe(LogLevel.Info)
    }))
})

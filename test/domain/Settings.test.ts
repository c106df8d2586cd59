import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import {
  defaultGlobalSettings,
  defaultGuildSettings,
  describeRule,
  GuildSettings,
  validateSetting
} from "../../src/domain/Settings.js"

describe("settings rules", () => {
  it("defaults match the design", () => {
    expect(defaultGuildSettings).toEqual({
      replydepth: 5,
      typing: true,
      ratelimit: 2,
      queuesize: 50,
      timeout: 60,
      mcpguidance: true,
      conversations: "channel",
      parallel: 8,
      fallback: "post",
      images: true,
      feedback: true,
      tools: "mcp",
      approvaltimeout: 10
    })
    expect(Schema.is(GuildSettings)(defaultGuildSettings)).toBe(true)
    expect(defaultGlobalSettings.dmConversations).toBe("channel")
  })

  it.each(
    [
      ["ratelimit", 0.5, true],
      ["ratelimit", 10, true],
      ["ratelimit", 0.4, false],
      ["ratelimit", 10.1, false],
      ["replydepth", 1, true],
      ["replydepth", 10, true],
      ["replydepth", 0, false],
      ["replydepth", 11, false],
      ["replydepth", 2.5, false],
      ["queuesize", 10, true],
      ["queuesize", 200, true],
      ["queuesize", 9, false],
      ["queuesize", 201, false],
      ["timeout", 10, true],
      ["timeout", 300, true],
      ["timeout", 9, false],
      ["timeout", 301, false],
      ["timeout", "60", true],
      ["timeout", "sixty", false],
      ["timeout", "", false],
      ["ratelimit", Number.NaN, false],
      ["ratelimit", Number.POSITIVE_INFINITY, false],
      ["typing", false, true],
      ["typing", "true", true],
      ["typing", 1, false],
      ["conversations", "channel", true],
      ["conversations", "shared", true],
      ["conversations", "Shared", false],
      ["conversations", " channel", false],
      ["conversations", "", false],
      ["conversations", true, false],
      ["fallback", "post", true],
      ["fallback", "off", true],
      ["fallback", "Post", false],
      ["fallback", "none", false],
      ["images", "false", true],
      ["images", "no", false],
      ["feedback", true, true],
      ["feedback", 1, false],
      ["tools", "builtin", true],
      ["tools", "mcp", true],
      ["tools", "Builtin", false],
      ["tools", "both", false],
      ["approvaltimeout", 1, true],
      ["approvaltimeout", "60", true],
      ["approvaltimeout", 0, false],
      ["approvaltimeout", 61, false],
      ["approvaltimeout", 2.5, false],
      ["parallel", 1, true],
      ["parallel", 32, true],
      ["parallel", "8", true],
      ["parallel", 0, false],
      ["parallel", 33, false],
      ["parallel", 1.5, false]
    ] as const
  )("%s = %s accepted: %s", (key, value, ok) => {
    expect(Either.isRight(validateSetting(key, value))).toBe(ok)
  })

  it("a rejection names the allowed range", () => {
    const result = validateSetting("ratelimit", 0.4)
    expect(Either.isLeft(result)).toBe(true)
    if (Either.isLeft(result)) expect(result.left.message).toBe("ratelimit must be between 0.5 and 10 seconds (got 0.4)")
    expect(describeRule("queuesize")).toBe("a whole number between 10 and 200")
    expect(describeRule("parallel")).toBe("a whole number between 1 and 32")
    expect(describeRule("conversations")).toBe("channel or shared")
  })

  it("the schema and the validator agree", () => {
    const decode = Schema.decodeUnknownEither(GuildSettings)
    expect(Either.isLeft(decode({ ...defaultGuildSettings, ratelimit: 0.4 }))).toBe(true)
    expect(Either.isLeft(decode({ ...defaultGuildSettings, replydepth: 3.5 }))).toBe(true)
    expect(Either.isRight(decode({ ...defaultGuildSettings, ratelimit: 10 }))).toBe(true)
    expect(Either.isLeft(decode({ ...defaultGuildSettings, parallel: 33 }))).toBe(true)
    expect(Either.isLeft(decode({ ...defaultGuildSettings, conversations: "both" }))).toBe(true)
    expect(Either.isRight(decode({ ...defaultGuildSettings, conversations: "shared", parallel: 32 }))).toBe(true)
  })
})

import { describe, expect, it } from "@effect/vitest"
import { ChannelType, DiscordAPIError, DiscordjsErrorCodes, HTTPError, RateLimitError } from "discord.js"
import { Duration, Schema } from "effect"
import { ChannelKind } from "../../../src/domain/Discord.js"
import {
  channelKind,
  loginFailureMessage,
  networkCodeOf,
  toDiscordFailure
} from "../../../src/services/discord/DiscordMapping.js"

const url = "http://127.0.0.1:1/api/v10/channels/1/messages/2"

const apiError = (status: number, code: number, extra: Record<string, unknown> = {}) =>
  new DiscordAPIError({ message: `error ${code}`, code, ...extra }, code, status, "GET", url, {})

const read = { operation: "fetchMessage", channelId: "1", messageId: "2" } as const
const typing = { operation: "sendTyping", channelId: "1" } as const

const refused = () => new TypeError("fetch failed", { cause: Object.assign(new Error("connect"), { code: "ECONNREFUSED" }) })

describe("channelKind", () => {
  it.each(
    [
      [ChannelType.GuildText, "text"],
      [ChannelType.DM, "dm"],
      [ChannelType.GroupDM, "group-dm"],
      [ChannelType.GuildVoice, "voice"],
      [ChannelType.GuildAnnouncement, "announcement"],
      [ChannelType.AnnouncementThread, "announcement-thread"],
      [ChannelType.PublicThread, "public-thread"],
      [ChannelType.PrivateThread, "private-thread"],
      [ChannelType.GuildStageVoice, "stage"],
      [ChannelType.GuildForum, "forum"],
      [ChannelType.GuildMedia, "media"],
      [ChannelType.GuildCategory, "unknown"],
      [ChannelType.GuildDirectory, "unknown"]
    ] as const
  )("maps discord.js channel type %s to %s", (type, kind) => {
    expect(channelKind(type)).toBe(kind)
  })

  it("maps every discord.js channel type, and types it does not know yet, to a domain kind", () => {
    const types = Object.values(ChannelType).filter((value): value is ChannelType => typeof value === "number")
    expect(types.length).toBeGreaterThan(10)
    for (const type of [...types, 999]) expect(Schema.is(ChannelKind)(channelKind(type))).toBe(true)
  })
})

describe("toDiscordFailure", () => {
  it("maps an unknown message (10008) to MessageNotFound with its ids", () => {
    const failure = toDiscordFailure(apiError(404, 10008), read)
    expect(failure._tag).toBe("MessageNotFound")
    expect(failure).toMatchObject({ channelId: "1", messageId: "2" })
  })

  it("maps an unknown channel (10003) while reading a message to MessageNotFound", () => {
    expect(toDiscordFailure(apiError(404, 10003), read)._tag).toBe("MessageNotFound")
  })

  it("maps a 404 that is not about a message to DiscordError", () => {
    const failure = toDiscordFailure(apiError(404, 10003), typing)
    expect(failure._tag).toBe("DiscordError")
    expect(failure).toMatchObject({ operation: "sendTyping" })
  })

  it.each([
    [403, 50001],
    [403, 50013],
    [403, 0]
  ])("maps %s / code %s to MissingAccess", (status, code) => {
    expect(toDiscordFailure(apiError(status, code), read)).toMatchObject({
      _tag: "MissingAccess",
      channelId: "1",
      operation: "fetchMessage"
    })
  })

  it("maps a 429 answer to DiscordRateLimited with Discord's retry_after", () => {
    const failure = toDiscordFailure(apiError(429, 0, { retry_after: 2.5 }), read)
    expect(failure._tag).toBe("DiscordRateLimited")
    if (failure._tag !== "DiscordRateLimited") return
    expect(Duration.toMillis(failure.retryAfter)).toBe(2500)
  })

  it("maps discord.js' RateLimitError (rejectOnRateLimit) to DiscordRateLimited", () => {
    const error = new RateLimitError({
      timeToReset: 1234,
      limit: 5,
      method: "POST",
      hash: "h",
      url,
      route: "/channels/:id/typing",
      majorParameter: "1",
      global: false,
      retryAfter: 1234,
      sublimitTimeout: 0,
      scope: "user"
    })
    const failure = toDiscordFailure(error, typing)
    expect(failure._tag).toBe("DiscordRateLimited")
    if (failure._tag !== "DiscordRateLimited") return
    expect(Duration.toMillis(failure.retryAfter)).toBe(1234)
  })

  it("maps a 5xx to DiscordError naming the status", () => {
    const failure = toDiscordFailure(new HTTPError(502, "Bad Gateway", "GET", url, {}), read)
    expect(failure._tag).toBe("DiscordError")
    expect(failure).toMatchObject({ reason: expect.stringContaining("502") })
    expect(toDiscordFailure(apiError(500, 0), read)._tag).toBe("DiscordError")
  })

  it("maps a network failure to DiscordError naming the error code", () => {
    const failure = toDiscordFailure(refused(), read)
    expect(failure._tag).toBe("DiscordError")
    expect(failure).toMatchObject({ reason: expect.stringContaining("ECONNREFUSED") })
  })
})

describe("loginFailureMessage", () => {
  const context = { apiUrl: "http://127.0.0.1:9/api", token: "super-secret-token" }

  it("names DISCORD_TOKEN when Discord rejects it", () => {
    const tokenInvalid = Object.assign(new Error("An invalid token was provided."), {
      code: DiscordjsErrorCodes.TokenInvalid
    })
    expect(loginFailureMessage(tokenInvalid, context)).toBe("Discord rejected DISCORD_TOKEN (401 Unauthorized)")
    expect(loginFailureMessage(apiError(401, 0), context)).toBe("Discord rejected DISCORD_TOKEN (401 Unauthorized)")
    expect(loginFailureMessage(new Error("Authentication failed"), context)).toContain("rejected DISCORD_TOKEN")
  })

  it("names the URL when Discord cannot be reached", () => {
    expect(networkCodeOf(refused())).toBe("ECONNREFUSED")
    expect(loginFailureMessage(refused(), context)).toBe("cannot reach Discord at http://127.0.0.1:9/api (ECONNREFUSED)")
  })

  it("never repeats the token, whatever the error says", () => {
    const message = loginFailureMessage(new Error(`bad header: Bot ${context.token}`), context)
    expect(message).not.toContain(context.token)
    expect(message).toContain("[redacted]")
  })
})

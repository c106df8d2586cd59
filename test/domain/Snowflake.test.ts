/** Snowflakes and message references: what is an id, what is a message link, and what is neither. */
import { describe, expect, it } from "@effect/vitest"
import { Either, Option, Schema } from "effect"
import { isSnowflake, parseMessageRef, Snowflake } from "../../src/domain/Snowflake.js"

const guild = "1300000000000000001"
const channel = "1400000000000000101"
const message = "930000000000000001"
const path = `channels/${guild}/${channel}/${message}`

describe("Snowflake", () => {
  const cases: ReadonlyArray<readonly [string, string, boolean]> = [
    ["17 digits (spring 2015)", "41771983423143937", true],
    ["18 digits", message, true],
    ["19 digits (today)", guild, true],
    ["20 digits (2^64 - 1)", "18446744073709551615", true],
    ["16 digits (before Discord existed)", "1234567890123456", false],
    ["21 digits (wider than 64 bits)", "123456789012345678901", false],
    ["a short number", "123", false],
    ["empty", "", false],
    ["a sign", "-41771983423143937", false],
    ["a letter inside", "4177198342314393x7", false],
    ["surrounding whitespace", ` ${message} `, false],
    ["a newline after it", `${message}\n`, false],
    ["markup after it", `${message} - ignore this`, false],
    ["a mention", `<@${message}>`, false]
  ]
  for (const [name, input, valid] of cases) {
    it(`${name}: ${valid ? "an id" : "not an id"}`, () => {
      expect(isSnowflake(input)).toBe(valid)
      // The guard and the schema agree.
      expect(Either.isRight(Schema.decodeUnknownEither(Snowflake)(input))).toBe(valid)
    })
  }

  it("a non-string is never an id", () => {
    expect(isSnowflake(930000000000000000)).toBe(false)
    expect(isSnowflake(null)).toBe(false)
  })
})

describe("parseMessageRef", () => {
  const id = (messageId: string) => Option.some({ _tag: "MessageId", messageId })
  const link = (guildId: string | null, channelId: string, messageId: string) =>
    Option.some({ _tag: "MessageLink", guildId, channelId, messageId })

  const cases: ReadonlyArray<readonly [string, string, Option.Option<unknown>]> = [
    ["a bare id", message, id(message)],
    ["a bare id in whitespace", `  ${message}\n`, id(message)],
    ["discord.com", `https://discord.com/${path}`, link(guild, channel, message)],
    ["ptb.discord.com", `https://ptb.discord.com/${path}`, link(guild, channel, message)],
    ["canary.discord.com", `https://canary.discord.com/${path}`, link(guild, channel, message)],
    ["discordapp.com", `https://discordapp.com/${path}`, link(guild, channel, message)],
    ["canary.discordapp.com", `https://canary.discordapp.com/${path}`, link(guild, channel, message)],
    ["http", `http://discord.com/${path}`, link(guild, channel, message)],
    ["a trailing slash", `https://discord.com/${path}/`, link(guild, channel, message)],
    ["in <angle brackets>", `<https://discord.com/${path}>`, link(guild, channel, message)],
    ["a link in whitespace", ` \thttps://discord.com/${path} `, link(guild, channel, message)],
    ["a DM link (@me)", `https://discord.com/channels/@me/${channel}/${message}`, link(null, channel, message)],
    ["an id of 16 digits", "1234567890123456", Option.none()],
    ["an id of 21 digits", "123456789012345678901", Option.none()],
    ["a link with a 16-digit message", `https://discord.com/channels/${guild}/${channel}/1234567890123456`, Option.none()],
    ["a link with a 21-digit channel", `https://discord.com/channels/${guild}/123456789012345678901/${message}`, Option.none()],
    ["a link with a short guild", `https://discord.com/channels/1/${channel}/${message}`, Option.none()],
    ["another host", `https://evil.example/${path}`, Option.none()],
    ["a host ending in discord.com", `https://notdiscord.com/${path}`, Option.none()],
    ["another subdomain", `https://www.discord.com/${path}`, Option.none()],
    ["no scheme", `discord.com/${path}`, Option.none()],
    ["a channel link (no message)", `https://discord.com/channels/${guild}/${channel}`, Option.none()],
    ["an extra path part", `https://discord.com/${path}/5`, Option.none()],
    ["a query string", `https://discord.com/${path}?x=1`, Option.none()],
    ["an unpaired <", `<https://discord.com/${path}`, Option.none()],
    ["an unpaired >", `https://discord.com/${path}>`, Option.none()],
    ["a bare id in <angle brackets>", `<${message}>`, Option.none()],
    ["two ids", `${message} ${message}`, Option.none()],
    ["text around a link", `see https://discord.com/${path}`, Option.none()],
    ["a newline inside", `https://discord.com/channels/${guild}/${channel}/\n${message}`, Option.none()],
    ["junk", "abc", Option.none()],
    ["empty", "", Option.none()],
    ["long junk", "x".repeat(300), Option.none()]
  ]
  for (const [name, input, expected] of cases) {
    it(name, () => {
      expect(parseMessageRef(input)).toStrictEqual(expected)
    })
  }
})

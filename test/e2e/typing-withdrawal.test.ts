/**
 * DiscordGateway.sendTyping against the loopback FakeDiscord, under discord.js' own global rate
 * limit (50 requests per second): a typing call interrupted while it still waits in that queue
 * must be withdrawn, not sent once the next second opens. Every dispatch shows typing, and a busy
 * bot starts more runs per second than the limit lets through, so calls sent late would pile up
 * (with the fibers that made them) and eat the budget the agent's own Discord calls need.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer } from "effect"
import { AuroraConfig } from "../../src/domain/Config.js"
import { DiscordGateway } from "../../src/services/discord/DiscordGateway.js"
import { DirectMessageSwitch } from "../../src/services/discord/Intake.js"
import { FakeDiscord, world } from "../fakes/FakeDiscord.js"

/** discord.js' default global limit (DefaultRestOptions.globalRequestsPerSecond). */
const globalRequestsPerSecond = 50
/** More typing calls than discord.js sends in one second. */
const calls = 70

describe("DiscordGateway.sendTyping and discord.js' global rate limit", () => {
  it.scopedLive("a typing call interrupted while it waits for the rate limit is never sent", () =>
    Effect.gen(function*() {
      const fake = yield* FakeDiscord.make()
      const context = yield* Layer.build(
        DiscordGateway.Default.pipe(
          Layer.provide(AuroraConfig.Default),
          Layer.provide(fake.configLayer()),
          Layer.provide(DirectMessageSwitch.layerFixed(false))
        )
      )
      const gateway = Context.get(context, DiscordGateway)
      // Distinct channels: distinct rate-limit buckets, so only the global limit holds them back.
      const channels = Array.from({ length: calls }, (_, i) => (BigInt(world.general) + BigInt(i + 1)).toString())
      const fibers = yield* Effect.forEach(channels, (channelId) => Effect.fork(gateway.sendTyping(channelId)))
      // The first ones go out at once; the rest wait in discord.js for the next second.
      yield* fake.waitForRequest((request) => request.method === "POST" && request.path.endsWith("/typing"))
      yield* Effect.forEach(fibers, Fiber.interrupt, { discard: true })

      // This call waits for the same next second as the withdrawn ones did, behind them in
      // discord.js' queue: once it is answered, any of them still queued would have been sent.
      yield* gateway.sendTyping(world.general)
      const sent = fake.typingCalls().map((call) => call.channelId)
      expect(sent.at(-1)).toBe(world.general)
      // At most the first second's budget went out (some of it may have been on the wire when
      // interrupted); without the withdrawal all of them would arrive.
      expect(sent.length - 1).toBeLessThanOrEqual(globalRequestsPerSecond)
    }))
})

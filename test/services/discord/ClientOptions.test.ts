import { describe, expect, it } from "@effect/vitest"
import { Options } from "discord.js"
import { cacheLimits, messageCacheSize, unreadCaches } from "../../../src/services/discord/ClientOptions.js"

describe("clientOptions: discord.js' caches", () => {
  it("keeps the messages the reply chains read, per channel (guild and DM channels alike)", () => {
    expect(cacheLimits.MessageManager).toBe(messageCacheSize)
    expect(cacheLimits.GuildMessageManager).toBeUndefined()
    expect(cacheLimits.DMMessageManager).toBeUndefined()
  })

  it("caches nothing of what Aurora never reads", () => {
    expect(unreadCaches.length).toBeGreaterThan(5)
    for (const name of unreadCaches) expect(cacheLimits[name], name).toBe(0)
  })

  it("leaves guilds, channels, roles, members, users and threads as discord.js keeps them", () => {
    for (const name of ["GuildMemberManager", "UserManager", "GuildTextThreadManager", "ThreadMemberManager"] as const) {
      expect(cacheLimits[name], name).toBeUndefined()
    }
    expect(cacheLimits.ThreadManager).toEqual(Options.DefaultMakeCacheSettings.ThreadManager)
  })
})

import { describe, expect, it } from "@effect/vitest"
import { LimitedCollection, type LimitedCollectionOptions, Options } from "discord.js"
import {
  cacheLimits,
  memberCacheSize,
  messageCacheSize,
  unreadCaches,
  userCacheSize
} from "../../../src/services/discord/ClientOptions.js"

const botId = "900000000000000001"
const client = { user: { id: botId } }
const entry = (n: number) => ({ id: String(1_000_000 + n), client })

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

  it("bounds members per guild and users in all, keeping the newest and always the bot's own", () => {
    const cases = [
      { limit: memberCacheSize, setting: cacheLimits.GuildMemberManager },
      { limit: userCacheSize, setting: cacheLimits.UserManager }
    ]
    for (const { limit, setting } of cases) {
      // What discord.js' Options.cacheWithLimits builds from an options setting.
      const cache = new LimitedCollection(setting as LimitedCollectionOptions<string, ReturnType<typeof entry>>)
      cache.set(botId, { id: botId, client })
      for (let n = 0; n < limit + 100; n += 1) cache.set(entry(n).id, entry(n))
      expect(cache.size).toBe(limit)
      expect(cache.has(botId)).toBe(true)
      expect(cache.has(entry(limit + 99).id)).toBe(true)
      expect(cache.has(entry(0).id)).toBe(false)
    }
  })

  it("leaves guilds, channels, roles and threads as discord.js keeps them", () => {
    for (const name of ["GuildTextThreadManager", "ThreadMemberManager"] as const) {
      expect(cacheLimits[name], name).toBeUndefined()
    }
    expect(cacheLimits.ThreadManager).toEqual(Options.DefaultMakeCacheSettings.ThreadManager)
  })
})

/** The benchmark's Discord world: N guilds of M text channels, one agent per guild (or one in all). */
import { ChannelType } from "discord.js"
import type { FakeGuild } from "../test/fakes/FakeDiscord.js"

const DiscordEpoch = 1_420_070_400_000n

export interface BenchWorld {
  readonly guilds: ReadonlyArray<FakeGuild>
  /** Every text channel, round-robin order: guild 0 channel 0, guild 1 channel 0, ... */
  readonly channels: ReadonlyArray<{ readonly guildId: string; readonly channelId: string }>
  /** guild id -> agent id */
  readonly agents: Readonly<Record<string, string>>
}

const pad = (n: number) => String(n).padStart(6, "0")

export const makeWorld = (guildCount: number, channelsPerGuild: number, sharedAgent?: string): BenchWorld => {
  const guilds: Array<FakeGuild> = []
  const agents: Record<string, string> = {}
  for (let g = 0; g < guildCount; g++) {
    const id = `1310000000000${pad(g)}`
    guilds.push({
      id,
      name: `Bench Guild ${g}`,
      channels: Array.from({ length: channelsPerGuild }, (_, c) => ({
        id: `14100000${pad(g)}${pad(c)}`,
        name: `bench-${c}`,
        type: ChannelType.GuildText
      }))
    })
    agents[id] = sharedAgent ?? `agent-bench-${g}`
  }
  // Interleaved across guilds, so consecutive mentions land in different guilds and agents.
  const channels: Array<{ guildId: string; channelId: string }> = []
  for (let c = 0; c < channelsPerGuild; c++) {
    for (const guild of guilds) {
      const channel = guild.channels[c]
      if (channel !== undefined) channels.push({ guildId: guild.id, channelId: channel.id })
    }
  }
  return { guilds, channels, agents }
}

/**
 * Unique message ids for any number of messages sent in the same millisecond (the fake's own
 * generator wraps after 4 096). Worker bits 2..31 keep them apart from the fake's (worker 1).
 */
export const messageId = (sequence: number, now: number = Date.now()): string =>
  (
    ((BigInt(now) - DiscordEpoch) << 22n) |
    (BigInt(2 + (Math.floor(sequence / 4096) % 30)) << 17n) |
    BigInt(sequence % 4096)
  ).toString()

/** The text of mention `n`: the token survives Aurora's prompt escaping and the floor's plain text. */
export const mentionText = (botId: string, n: number): string => `<@${botId}> bench-${n}-token please answer`

export const tokenOf = (text: string): number | undefined => {
  const match = /bench-(\d+)-token/.exec(text)
  return match?.[1] === undefined ? undefined : Number(match[1])
}

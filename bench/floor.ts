/**
 * The floor bot: the least a Discord-to-Letta bridge can do. A bare discord.js client that, on a
 * message mentioning it, POSTs the text to the guild's agent with fetch and reads the stream to
 * the end. No queue, no rate limit, no context, no retries: whatever Aurora costs above this is
 * Aurora's overhead.
 */
import { Client, Events, GatewayIntentBits, type Message } from "discord.js"
import { Effect, type Scope } from "effect"

export interface FloorConfig {
  readonly discordApiUrl: string
  readonly discordToken: string
  readonly lettaUrl: string
  /** guild id -> agent id */
  readonly agents: Readonly<Record<string, string>>
}

export interface FloorBot {
  readonly startToReadyMs: number
  /** Posts that failed (connection or non-2xx); the benchmark expects none. */
  readonly failures: () => number
}

export const startFloor = (config: FloorConfig): Effect.Effect<FloorBot, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const startedAt = performance.now()
    let failures = 0
    const client = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new Client({
          intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages, GatewayIntentBits.MessageContent],
          rest: { api: config.discordApiUrl }
        })
      ),
      (client) => Effect.promise(() => client.destroy())
    )

    const post = async (agentId: string, text: string): Promise<void> => {
      try {
        const response = await fetch(`${config.lettaUrl}/v1/agents/${agentId}/messages`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ messages: [{ role: "user", content: text }], streaming: true })
        })
        // Read the stream to its end, as any bot that watches the run must.
        await response.arrayBuffer()
        if (!response.ok) failures++
      } catch {
        failures++
      }
    }

    client.on(Events.MessageCreate, (message: Message) => {
      const self = client.user
      if (self === null || message.guildId === null || !message.mentions.users.has(self.id)) return
      const agentId = config.agents[message.guildId]
      if (agentId !== undefined) void post(agentId, message.content)
    })

    yield* Effect.async<void, Error>((resume) => {
      client.once(Events.ClientReady, () => resume(Effect.void))
      client.login(config.discordToken).catch((error: unknown) =>
        resume(Effect.fail(error instanceof Error ? error : new Error(String(error))))
      )
    })
    return { startToReadyMs: performance.now() - startedAt, failures: () => failures }
  })

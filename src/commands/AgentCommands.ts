/**
 * `/aurora enable|disable` and `/aurora dm enable|disable`: binding an agent. The agent is looked
 * up on the Letta server first (`GET /v1/agents/{id}`), so a typo is answered at once instead of
 * failing every later run. Replies never show the server's URL or error text (guild admins are not
 * the operator); the log line has the details.
 */
import { Effect } from "effect"
import { Partition } from "../domain/Event.js"
import type { LettaRunError } from "../domain/LettaErrors.js"
import { EventQueue } from "../services/queue/EventQueue.js"
import { LettaClient } from "../services/letta/LettaClient.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"
import { code, plural } from "./Format.js"
import { CommandRejected, type Invocation, Reply } from "./Invocation.js"
import { agentIdOf, guildOf } from "./Options.js"

const lookupFailure = (agentId: string, error: LettaRunError): string => {
  switch (error._tag) {
    case "AgentNotFound":
      return `❌ Agent ${code(agentId)} not found on the Letta server. Nothing was changed.`
    case "LettaConnectionError":
    case "LettaTimeout":
      return "❌ The Letta server is unreachable right now, so the agent could not be checked. Nothing was changed."
    case "LettaUnauthorized":
      return "❌ The Letta server refused Aurora's API key (LETTA_API_KEY). Nothing was changed."
    case "LettaRateLimited":
    case "LettaServerError":
    case "AgentBusy":
    case "ConversationBusy":
    case "ConversationNotFound":
      return "❌ The Letta server could not answer the agent check right now; try again shortly. Nothing was changed."
    case "LettaRejected":
    case "RunFailed":
      return `❌ The Letta server rejected the agent check for ${code(agentId)}. Nothing was changed.`
  }
}

/** The agent, or a rejection that says why it cannot be used. */
export const checkAgent = (agentId: string) =>
  Effect.gen(function*() {
    const letta = yield* LettaClient
    return yield* letta.retrieveAgent(agentId).pipe(
      Effect.tapError((error) =>
        Effect.logWarning("agent check failed").pipe(
          Effect.annotateLogs({ agentId, error: error._tag, reason: error.reason })
        )
      ),
      Effect.mapError((error) => new CommandRejected({ message: lookupFailure(agentId, error) }))
    )
  })

const agentName = (agent: { readonly id: string; readonly name: string }): string =>
  agent.name.trim() === "" ? code(agent.id) : `${code(agent.name, 100)} (${code(agent.id)})`

export const enable = (invocation: Invocation) =>
  Effect.gen(function*() {
    const guildId = yield* guildOf(invocation)
    const agentId = yield* agentIdOf(invocation)
    const agent = yield* checkAgent(agentId)
    const store = yield* SettingsStore
    const state = yield* store.enable(guildId, agent.id)
    yield* Effect.logInfo("guild enabled").pipe(Effect.annotateLogs({ agentId: agent.id }))
    const paused = state.paused ? "\n⏸️ Dispatch is paused in this server: `/aurora events resume` to start." : ""
    return Reply.text(
      `✅ Aurora is enabled in this server with agent ${agentName(agent)}. Mention me or reply to me to talk to it.${paused}`
    )
  })

export const disable = (invocation: Invocation) =>
  Effect.gen(function*() {
    const guildId = yield* guildOf(invocation)
    const store = yield* SettingsStore
    const queue = yield* EventQueue
    const before = yield* store.guild(guildId)
    yield* store.disable(guildId)
    const dropped = yield* queue.clear(Partition.guild(guildId))
    yield* Effect.logInfo("guild disabled").pipe(Effect.annotateLogs({ dropped }))
    const head = before.enabled ? "⛔ Aurora is disabled in this server." : "Aurora was not enabled in this server."
    return Reply.text(`${head} Dropped ${plural(dropped, "pending event")}.`)
  })

export const dmEnable = (invocation: Invocation) =>
  Effect.gen(function*() {
    yield* guildOf(invocation)
    const agentId = yield* agentIdOf(invocation)
    const agent = yield* checkAgent(agentId)
    const store = yield* SettingsStore
    yield* store.setDmAgent(agent.id)
    yield* Effect.logInfo("direct messages enabled").pipe(Effect.annotateLogs({ agentId: agent.id }))
    return Reply.text(`✅ Direct messages to Aurora are now answered by agent ${agentName(agent)}.`)
  })

export const dmDisable = (invocation: Invocation) =>
  Effect.gen(function*() {
    yield* guildOf(invocation)
    const store = yield* SettingsStore
    const queue = yield* EventQueue
    const before = yield* store.global
    yield* store.setDmAgent(null)
    const dropped = yield* queue.clear(Partition.dm)
    yield* Effect.logInfo("direct messages disabled").pipe(Effect.annotateLogs({ dropped }))
    const head = before.dmAgentId === null
      ? "Direct messages were already off."
      : "⛔ Direct messages are off: Aurora ignores DMs from now on."
    return Reply.text(`${head} Dropped ${plural(dropped, "pending direct message")}.`)
  })

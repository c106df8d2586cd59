/**
 * Shared by the take-up suites (StopTakeUp, StopTakeUpJournal): ./DispatchHarness.ts's fakes with
 * the memory pending approvals, a queue over the harness's journal and the real continuation
 * (ApprovalResume); an origin in guild g1, open stop records of it, and Discord as the built-in
 * tools see it (the triggering channel known, posts counted).
 */
import { Effect, Layer } from "effect"
import type { ApprovalOrigin } from "../../src/domain/Approval.js"
import { Partition } from "../../src/domain/Event.js"
import { makeApprovalResume } from "../../src/programs/ApprovalResume.js"
import { makeStopTakeUp } from "../../src/programs/StopTakeUp.js"
import { PendingApprovals } from "../../src/services/approvals/PendingApprovals.js"
import { ApprovalContinuation } from "../../src/services/approvals/Ports.js"
import { EventQueue } from "../../src/services/queue/EventQueue.js"
import { type OpenStop, OpenStops } from "../../src/services/queue/OpenStops.js"
import { QueuePolicy } from "../../src/services/queue/QueuePolicy.js"
import { type makeHarness, noActions, retrySchedule } from "./DispatchHarness.js"

export const channelId = "100000000000000001"
export const origin: ApprovalOrigin = {
  guildId: "g1",
  channelId,
  messageId: "m1",
  agentId: "a1",
  conversationId: "conv-1",
  runId: "run-1"
}

export const stopOf = (key: string, calls: OpenStop["calls"], openedAt = 1_000, at: Partial<ApprovalOrigin> = {}): OpenStop => ({
  key,
  origin: { ...origin, ...at },
  calls,
  actionsBefore: [],
  openedAt
})

export const builtin = (name: string, toolCallId: string) => ({
  name,
  toolCallId,
  arguments: JSON.stringify({ channelId }),
  aurora: true
})
export const personal = (name: string, toolCallId: string) => ({ name, toolCallId, arguments: "{}", aurora: false })

export const start = (toolCallId: string, tool: string) => ({
  toolCallId,
  tool,
  partition: Partition.guild("g1"),
  channelId,
  messageId: "m1",
  at: 500
})

/** Discord as the built-in tools see it: the triggering channel is known, any post is counted. */
export const counted = () => {
  const posts: Array<string> = []
  const actions = {
    ...noActions,
    locateChannel: (id: string) => Effect.succeed({ channelId: id, guildId: "g1", kind: "text" as const, textBased: true }),
    post: (id: string, content: string) =>
      Effect.sync(() => {
        posts.push(content)
        return { channelId: id, messageId: `p${posts.length}`, replyTo: null }
      })
  }
  return { posts, actions }
}

/** The harness's fakes, the memory pending approvals, a queue over the harness's journal, and the real continuation. */
export const world = (h: ReturnType<typeof makeHarness>) => {
  const stores = Layer.merge(h.layer, PendingApprovals.layerMemory)
  const base = Layer.merge(
    stores,
    EventQueue.layer().pipe(Layer.provide(QueuePolicy.layerFixed({ capacity: 50, spacing: 0 })), Layer.provide(stores))
  )
  return Layer.merge(base, Layer.effect(ApprovalContinuation, makeApprovalResume({ retrySchedule })).pipe(Layer.provide(base)))
}

export const takeUpStops = Effect.flatMap(makeStopTakeUp, (t) => t.takeUpStops)
export const openStops = Effect.flatMap(OpenStops, (stops) => stops.all)

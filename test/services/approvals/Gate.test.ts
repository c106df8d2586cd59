/**
 * The approval gate under TestClock, on a real SQLite store in a temp dir, with a recording
 * poster (Discord) and a recording continuation: open posts one reply and waits; decisions
 * resume once every call is decided, in call order, with reasons naming the decider; the deadline
 * denies what is undecided; a click racing the deadline; a restart re-arms the deadline or
 * resumes a complete approval; posting failures are Unavailable with nothing left behind.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Layer, Queue, Ref, Scope, TestClock } from "effect"
import type { ApprovalAnswer, ApprovalOrigin, ApprovalRequest } from "../../../src/domain/Approval.js"
import { DiscordError } from "../../../src/domain/Errors.js"
import type { ApprovalMessageBody } from "../../../src/services/approvals/ApprovalMessage.js"
import { ApprovalPoster } from "../../../src/services/approvals/ApprovalPoster.js"
import { type ApprovalClick, ApprovalGateLive, Approvals } from "../../../src/services/approvals/Gate.js"
import { PendingApprovals } from "../../../src/services/approvals/PendingApprovals.js"
import { ApprovalContinuation, ApprovalGate } from "../../../src/services/approvals/Ports.js"
import { exposition } from "../../../src/services/health/Prometheus.js"
import { Database } from "../../../src/services/storage/Database.js"
import { SettingsStore } from "../../../src/services/storage/SettingsStore.js"
import { makeTempDir } from "../../fakes/tempDir.js"
import { request } from "./fixtures.js"

const tempDir = makeTempDir("approvals-gate")

interface Resumed {
  readonly origin: ApprovalOrigin
  readonly answers: ReadonlyArray<ApprovalAnswer>
  readonly actionsBefore: ReadonlyArray<string>
}

interface Discord {
  readonly posts: Ref.Ref<ReadonlyArray<{ channelId: string; replyTo: string; body: ApprovalMessageBody }>>
  readonly edits: Ref.Ref<ReadonlyArray<{ channelId: string; messageId: string; body: ApprovalMessageBody }>>
  readonly failPosts: Ref.Ref<boolean>
}

const makeDiscord = Effect.all({
  posts: Ref.make<ReadonlyArray<{ channelId: string; replyTo: string; body: ApprovalMessageBody }>>([]),
  edits: Ref.make<ReadonlyArray<{ channelId: string; messageId: string; body: ApprovalMessageBody }>>([]),
  failPosts: Ref.make(false)
})

const posterOf = (discord: Discord) =>
  Layer.succeed(ApprovalPoster, {
    post: (channelId, replyTo, body) =>
      Effect.flatMap(Ref.get(discord.failPosts), (fail) =>
        fail
          ? Effect.fail(new DiscordError({ operation: "postApproval", reason: "403 Missing Permissions" }))
          : Effect.map(
            Ref.updateAndGet(discord.posts, (posts) => [...posts, { channelId, replyTo, body }]),
            (posts) => `approval-msg-${posts.length}`
          )),
    edit: (channelId, messageId, body) => Ref.update(discord.edits, (edits) => [...edits, { channelId, messageId, body }])
  })

/**
 * One "run of Aurora" on the database in `dir`: the gate with its store, settings, the recording
 * poster and continuation, built in its own scope so a test can close it (a restart).
 */
const startGate = (dir: string, discord: Discord, resumed: Queue.Queue<Resumed>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const storage = Layer.mergeAll(PendingApprovals.layerSql, SettingsStore.Default).pipe(Layer.provideMerge(Database.layer(dir)))
    const continuation = Layer.succeed(ApprovalContinuation, {
      resume: (origin, answers, actionsBefore) =>
        Effect.as(Queue.offer(resumed, { origin, answers, actionsBefore }), "answered" as const)
    })
    const layer = ApprovalGateLive.pipe(
      Layer.provideMerge(Approvals.Default),
      Layer.provideMerge(Layer.mergeAll(storage, posterOf(discord), continuation))
    )
    const context = yield* Layer.buildWithScope(layer, scope)
    return {
      gate: Context.get(context, ApprovalGate),
      approvals: Context.get(context, Approvals),
      store: Context.get(context, PendingApprovals),
      settings: Context.get(context, SettingsStore),
      stop: Scope.close(scope, Exit.void)
    }
  })

const setup = Effect.gen(function*() {
  const dir = yield* tempDir
  const discord = yield* makeDiscord
  const resumed = yield* Queue.unbounded<Resumed>()
  const running = yield* startGate(dir, discord, resumed)
  return { dir, discord, resumed, ...running }
})

const click = (approvalId: string, target: number | "all", approve: boolean, user = "alice"): ApprovalClick => ({
  approvalId: Number(approvalId),
  target,
  approve,
  userId: user === "alice" ? "111" : "222",
  username: user,
  channelId: "c1"
})

const waiting = (opened: { readonly _tag: string }) => {
  if (opened._tag !== "Waiting" || !("approvalId" in opened)) throw new Error(`not waiting: ${JSON.stringify(opened)}`)
  return String(opened.approvalId)
}

const oneCall = (overrides: Partial<ApprovalRequest> = {}) =>
  request({ calls: [request().calls[0]!], answered: [], requestedAt: 0, ...overrides })

describe("ApprovalGate.open", () => {
  it.scoped("stores, posts one reply to the triggering message, and waits", () =>
    Effect.gen(function*() {
      const { approvals, discord, gate, store } = yield* setup
      const opened = yield* gate.open(request({ requestedAt: 0 }))
      const id = waiting(opened)
      const posts = yield* Ref.get(discord.posts)
      expect(posts).toHaveLength(1)
      expect(posts[0]).toMatchObject({ channelId: "c1", replyTo: "m1" })
      expect(posts[0]?.body.allowed_mentions).toEqual({ parse: [] })
      expect(posts[0]?.body.components).toHaveLength(2)
      const stored = yield* store.get(Number(id))
      expect(stored).toMatchObject({ messageId: "approval-msg-1", deadline: 600_000 })
      expect(yield* gate.pendingFor("agent-1", "conv-1")).toBe(true)
      expect(yield* gate.pendingFor("agent-1", null)).toBe(false)
      expect(approvals).toBeDefined()
    }))

  it.scoped("Unavailable when Discord refuses the post: the record is removed, no deadline fires", () =>
    Effect.gen(function*() {
      const { discord, gate, resumed, store } = yield* setup
      yield* Ref.set(discord.failPosts, true)
      const opened = yield* gate.open(oneCall())
      expect(opened).toMatchObject({ _tag: "Unavailable" })
      expect(opened._tag === "Unavailable" ? opened.reason : "").toContain("Discord refused")
      expect(yield* store.all).toEqual([])
      expect(yield* gate.pendingFor("agent-1", "conv-1")).toBe(false)
      yield* TestClock.adjust(Duration.minutes(61))
      expect(yield* Queue.size(resumed)).toBe(0)
      expect(yield* Ref.get(discord.edits)).toEqual([])
    }))

  it.scoped("the guild's approvaltimeout sets the deadline", () =>
    Effect.gen(function*() {
      const { gate, settings, store } = yield* setup
      yield* settings.setSetting("g1", "approvaltimeout", 3)
      const id = waiting(yield* gate.open(oneCall()))
      expect((yield* store.get(Number(id)))?.deadline).toBe(3 * 60_000)
    }))
})

describe("decisions", () => {
  it.scoped("an approval resumes with approve true and a reason naming the decider; the record is then deleted", () =>
    Effect.gen(function*() {
      const { approvals, gate, resumed, store } = yield* setup
      const id = waiting(yield* gate.open(oneCall()))
      const result = yield* approvals.decide(click(id, 0, true))
      expect(result._tag).toBe("Recorded")
      if (result._tag === "Recorded") {
        expect(result.message.components[0]?.components.every((b) => b.disabled === true)).toBe(true)
        expect(result.message.embeds[0]?.fields?.[0]?.value).toContain("approved by alice (111)")
      }
      const { actionsBefore, answers, origin } = yield* Queue.take(resumed)
      expect(origin).toMatchObject({ guildId: "g1", channelId: "c1", messageId: "m1", conversationId: "conv-1" })
      expect(actionsBefore).toEqual(["discord_send"])
      expect(answers).toEqual([{ _tag: "Decision", toolCallId: "call-1", approve: true, reason: "approved by alice (111)" }])
      yield* Effect.yieldNow()
      expect(yield* store.all).toEqual([])
      // A second click on the finished approval changes nothing.
      expect(yield* approvals.decide(click(id, 0, false))).toEqual({ _tag: "AlreadyDecided" })
      // Nor does the deadline.
      yield* TestClock.adjust(Duration.minutes(11))
      expect(yield* Queue.size(resumed)).toBe(0)
    }))

  it.scoped("two calls: resume only after both are decided, answers after `answered`, in call order", () =>
    Effect.gen(function*() {
      const { approvals, gate, resumed } = yield* setup
      const id = waiting(yield* gate.open(request({ requestedAt: 0 })))
      yield* approvals.decide(click(id, 1, false, "bob"))
      yield* Effect.yieldNow()
      expect(yield* Queue.size(resumed)).toBe(0)
      expect(yield* approvals.decide(click(id, 1, true))).toEqual({ _tag: "AlreadyDecided" })
      yield* approvals.decide(click(id, 0, true))
      const { answers } = yield* Queue.take(resumed)
      expect(answers).toEqual([
        request().answered[0],
        { _tag: "Decision", toolCallId: "call-1", approve: true, reason: "approved by alice (111)" },
        { _tag: "Decision", toolCallId: "call-2", approve: false, reason: "denied by bob (222)" }
      ])
    }))

  it.scoped("a click from another channel, or on an unknown approval, changes nothing", () =>
    Effect.gen(function*() {
      const { approvals, gate, store } = yield* setup
      const id = waiting(yield* gate.open(oneCall()))
      expect(yield* approvals.decide({ ...click(id, 0, true), channelId: "elsewhere" })).toEqual({ _tag: "AlreadyDecided" })
      expect(yield* approvals.decide(click("999", 0, true))).toEqual({ _tag: "AlreadyDecided" })
      expect((yield* store.get(Number(id)))?.decisions).toEqual([null])
    }))
})

/** The exposed value of `aurora_approvals_total{outcome}` (the registry is the process's). */
const counted = (outcome: string) =>
  Effect.map(exposition(), (text) => {
    const line = text.split("\n").find((l) => l.startsWith(`aurora_approvals_total{outcome="${outcome}"}`))
    return line === undefined ? null : Number(line.split(" ")[1])
  })

describe("aurora_approvals_total", () => {
  it.scoped("exposed from the start, and counted once per approval by outcome", () =>
    Effect.gen(function*() {
      const { approvals, discord, gate, resumed } = yield* setup
      const before = yield* Effect.all([counted("approved"), counted("denied"), counted("timed_out"), counted("unavailable")])
      expect(before.every((n) => typeof n === "number")).toBe(true)
      const [approved = 0, denied = 0, timedOut = 0, unavailable = 0] = before.map((n) => n ?? 0)
      const a = waiting(yield* gate.open(request({ requestedAt: 0 })))
      yield* approvals.decide(click(a, 0, true))
      yield* approvals.decide(click(a, 1, true))
      const b = waiting(yield* gate.open(oneCall()))
      yield* approvals.decide(click(b, 0, false))
      waiting(yield* gate.open(oneCall()))
      yield* TestClock.adjust(Duration.minutes(10))
      yield* Queue.takeN(resumed, 3)
      yield* Ref.set(discord.failPosts, true)
      yield* gate.open(oneCall())
      expect(yield* Effect.all([counted("approved"), counted("denied"), counted("timed_out"), counted("unavailable")]))
        .toEqual([approved + 1, denied + 1, timedOut + 1, unavailable + 1])
    }))
})

describe("the deadline", () => {
  it.scoped("no decision within approvaltimeout: denied, message edited, resumed", () =>
    Effect.gen(function*() {
      const { discord, gate, resumed, store } = yield* setup
      const id = waiting(yield* gate.open(oneCall()))
      yield* TestClock.adjust(Duration.minutes(9))
      expect(yield* Queue.size(resumed)).toBe(0)
      yield* TestClock.adjust(Duration.minutes(1))
      const { answers } = yield* Queue.take(resumed)
      expect(answers).toEqual([{
        _tag: "Decision",
        toolCallId: "call-1",
        approve: false,
        reason: "no decision within 10 minutes"
      }])
      const edits = yield* Ref.get(discord.edits)
      expect(edits).toHaveLength(1)
      expect(edits[0]).toMatchObject({ channelId: "c1", messageId: "approval-msg-1" })
      expect(edits[0]?.body.components.flatMap((row) => row.components.map((b) => b.disabled))).toEqual([true, true])
      expect(edits[0]?.body.embeds[0]?.description).toContain("Timed out")
      yield* Effect.yieldNow()
      expect(yield* store.get(Number(id))).toBeNull()
    }))

  it.scoped("one call decided before the deadline: the deadline denies only the other", () =>
    Effect.gen(function*() {
      const { approvals, gate, resumed } = yield* setup
      const id = waiting(yield* gate.open(request({ requestedAt: 0 })))
      yield* approvals.decide(click(id, 0, true))
      yield* TestClock.adjust(Duration.minutes(10))
      const { answers } = yield* Queue.take(resumed)
      expect(answers.slice(1)).toEqual([
        { _tag: "Decision", toolCallId: "call-1", approve: true, reason: "approved by alice (111)" },
        { _tag: "Decision", toolCallId: "call-2", approve: false, reason: "no decision within 10 minutes" }
      ])
    }))

  it.scoped("a click racing the deadline: one resume, each call decided once", () =>
    Effect.gen(function*() {
      const { approvals, gate, resumed } = yield* setup
      const id = waiting(yield* gate.open(oneCall()))
      yield* TestClock.adjust(Duration.minutes(10)).pipe(
        Effect.zip(approvals.decide(click(id, 0, true)), { concurrent: true })
      )
      const first = yield* Queue.take(resumed)
      yield* TestClock.adjust(Duration.minutes(30))
      expect(yield* Queue.size(resumed)).toBe(0)
      expect(first.answers).toHaveLength(1)
    }))
})

describe("restart", () => {
  it.scoped("a pending approval's deadline is re-armed by the next start, and its buttons still work", () =>
    Effect.gen(function*() {
      const { dir, discord, gate, resumed, stop } = yield* setup
      const first = waiting(yield* gate.open(oneCall()))
      const second = waiting(yield* gate.open(oneCall({ messageId: "m2" })))
      yield* stop
      yield* TestClock.adjust(Duration.minutes(5))
      const restarted = yield* startGate(dir, discord, resumed)
      // A click on the first, posted before the restart, is read from the store.
      yield* restarted.approvals.decide(click(first, 0, true))
      const clicked = yield* Queue.take(resumed)
      expect(clicked.origin.messageId).toBe("m1")
      // What the run sent before its stop is handed over after the restart too.
      expect(clicked.actionsBefore).toEqual(["discord_send"])
      yield* TestClock.adjust(Duration.minutes(4))
      expect(yield* Queue.size(resumed)).toBe(0)
      yield* TestClock.adjust(Duration.minutes(1))
      const timedOut = yield* Queue.take(resumed)
      expect(timedOut.origin.messageId).toBe("m2")
      expect(timedOut.answers).toEqual([
        { _tag: "Decision", toolCallId: "call-1", approve: false, reason: "no decision within 10 minutes" }
      ])
      expect(second).not.toBe(first)
    }))

  it.scoped("a deadline that passed while Aurora was down: denied at start", () =>
    Effect.gen(function*() {
      const { dir, discord, gate, resumed, stop } = yield* setup
      waiting(yield* gate.open(oneCall()))
      yield* stop
      yield* TestClock.adjust(Duration.minutes(30))
      yield* startGate(dir, discord, resumed)
      const { answers } = yield* Queue.take(resumed)
      expect(answers).toEqual([{
        _tag: "Decision",
        toolCallId: "call-1",
        approve: false,
        reason: "no decision within 10 minutes"
      }])
      expect(yield* Ref.get(discord.edits)).toHaveLength(1)
    }))

  it.scoped("all decided but not finished (stopped before resume returned): resumed again at start, then deleted", () =>
    Effect.gen(function*() {
      const { dir, discord, gate, resumed, stop, store } = yield* setup
      const id = waiting(yield* gate.open(oneCall()))
      // Decided in the store directly, as if the process died before the continuation returned.
      yield* store.decide(Number(id), 0, { approve: true, reason: "approved by alice (111)", decidedBy: "111", at: 1 })
      yield* stop
      const restarted = yield* startGate(dir, discord, resumed)
      const { answers } = yield* Queue.take(resumed)
      expect(answers).toEqual([{ _tag: "Decision", toolCallId: "call-1", approve: true, reason: "approved by alice (111)" }])
      yield* Effect.yieldNow()
      expect(yield* restarted.store.all).toEqual([])
    }))
})

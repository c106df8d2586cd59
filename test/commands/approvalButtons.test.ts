/**
 * Who may decide an approval (the slash commands' `manage` rule: Manage Server, Administrator, or
 * an owner; in a DM only owners), and what a click gets: an ephemeral refusal and no change, an
 * ephemeral "already decided", or the updated message. The gate is a recording fake.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Ref } from "effect"
import { alreadyDecidedText, type ButtonClick, clickReply, failedText, refusalText } from "../../src/commands/ApprovalButtons.js"
import { CommandOwners } from "../../src/commands/Owners.js"
import { type ApprovalClick, Approvals, type ClickResult } from "../../src/services/approvals/Gate.js"

const updated: ClickResult = {
  _tag: "Recorded",
  message: { embeds: [{ title: "Approval needed: web_search" }], components: [], allowed_mentions: { parse: [] } }
}

const harness = (result: ClickResult = updated) =>
  Effect.gen(function*() {
    const decided = yield* Ref.make<ReadonlyArray<ApprovalClick>>([])
    const layer = Layer.mergeAll(
      CommandOwners.layerFixed(["999"]),
      Layer.succeed(
        Approvals,
        Approvals.make({
          open: () => Effect.die("not used"),
          pendingFor: () => Effect.succeed(false),
          decide: (click) => Effect.as(Ref.update(decided, (all) => [...all, click]), result)
        })
      )
    )
    return { decided, run: (click: ButtonClick) => clickReply(click).pipe(Effect.provide(layer)) }
  })

const click = (overrides: Partial<ButtonClick> = {}): ButtonClick => ({
  customId: "aurora:approval:7:1:approve",
  userId: "111",
  username: "alice",
  guildId: "g1",
  channelId: "c1",
  memberPermissions: 0n,
  ...overrides
})

describe("approval buttons: who may decide", () => {
  const cases: ReadonlyArray<readonly [string, Partial<ButtonClick>, boolean]> = [
    ["a member with Manage Server", { memberPermissions: 32n }, true],
    ["an Administrator", { memberPermissions: 8n }, true],
    ["an owner without the permission", { userId: "999", memberPermissions: 0n }, true],
    ["a member without Manage Server", { memberPermissions: 2048n }, false],
    ["a DM user who is not an owner", { guildId: null, memberPermissions: null }, false],
    ["an owner in a DM", { guildId: null, memberPermissions: null, userId: "999" }, true]
  ]
  for (const [who, overrides, allowed] of cases) {
    it.effect(`${who}: ${allowed ? "decides" : "is refused, ephemerally, and nothing changes"}`, () =>
      Effect.gen(function*() {
        const { decided, run } = yield* harness()
        const reply = yield* run(click(overrides))
        if (allowed) {
          expect(reply).toEqual({ _tag: "Update", message: updated._tag === "Recorded" ? updated.message : null })
          expect(yield* Ref.get(decided)).toEqual([{
            approvalId: 7,
            target: 1,
            approve: true,
            userId: overrides.userId ?? "111",
            username: "alice",
            channelId: "c1"
          }])
        } else {
          expect(reply).toEqual({ _tag: "Ephemeral", text: refusalText })
          expect(yield* Ref.get(decided)).toEqual([])
        }
      }))
  }
})

describe("approval buttons: replies", () => {
  it.effect("an approval decided already (or unknown): ephemeral, nothing else", () =>
    Effect.gen(function*() {
      const { run } = yield* harness({ _tag: "AlreadyDecided" })
      expect(yield* run(click({ memberPermissions: 32n }))).toEqual({ _tag: "Ephemeral", text: alreadyDecidedText })
    }))

  it.effect("a storage failure: ephemeral apology", () =>
    Effect.gen(function*() {
      const { run } = yield* harness({ _tag: "Failed", reason: "disk I/O error" })
      expect(yield* run(click({ memberPermissions: 32n }))).toEqual({ _tag: "Ephemeral", text: failedText })
    }))

  it.effect("a crafted custom id decides nothing", () =>
    Effect.gen(function*() {
      const { decided, run } = yield* harness()
      expect(yield* run(click({ customId: "aurora:approval:7:1:maybe", memberPermissions: 32n }))).toEqual({
        _tag: "Ephemeral",
        text: alreadyDecidedText
      })
      expect(yield* Ref.get(decided)).toEqual([])
    }))

  it.effect("the deny button passes approve false and the \"all\" target", () =>
    Effect.gen(function*() {
      const { decided, run } = yield* harness()
      yield* run(click({ customId: "aurora:approval:7:all:deny", memberPermissions: 32n }))
      expect((yield* Ref.get(decided))[0]).toMatchObject({ target: "all", approve: false })
    }))
})

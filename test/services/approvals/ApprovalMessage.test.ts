/**
 * The approval message: untrusted arguments cannot ping or break out of their code block, every
 * message fits Discord's limits (checked with the fake Discord's own validation), custom ids fit
 * in 100 characters and parse back, and the buttons follow the decisions.
 */
import { describe, expect, it } from "vitest"
import { customIdOf, parseCustomId, type PendingApproval } from "../../../src/domain/PendingApproval.js"
import { approvalMessage, embedLimits } from "../../../src/services/approvals/ApprovalMessage.js"
import { richContentProblem } from "../../fakes/discord/Components.js"

const approval = (args: ReadonlyArray<string>, overrides: Partial<PendingApproval> = {}): PendingApproval => ({
  id: 42,
  origin: { guildId: "g1", channelId: "c1", messageId: "m1", agentId: "agent-1", conversationId: null, runId: null },
  calls: args.map((a, i) => ({ name: `tool_${i}`, arguments: a, toolCallId: `call-${i}` })),
  answered: [],
  actionsBefore: [],
  decisions: args.map(() => null),
  messageId: null,
  requestedAt: 0,
  deadline: 600_000,
  ...overrides
})

const embedSize = (embed: ReturnType<typeof approvalMessage>["embeds"][number]) =>
  (embed.title?.length ?? 0) + (embed.description?.length ?? 0) +
  (embed.fields ?? []).reduce((sum, f) => sum + f.name.length + f.value.length, 0)

const hostile = JSON.stringify({
  text: "@everyone look ```js\nalert(1)``` <@&123456789012345678> @here",
  long: "x".repeat(5_000)
})

describe("approval message", () => {
  it("escapes arguments: no @everyone/@here, no closing code fence, and pings nobody", () => {
    const body = approvalMessage(approval([hostile]))
    const value = body.embeds[0]?.fields?.[0]?.value ?? ""
    expect(body.allowed_mentions).toEqual({ parse: [] })
    expect(value).not.toMatch(/@everyone|@here/)
    expect(value).toContain("@\u200beveryone")
    // One opening and one closing fence only: the argument's backticks cannot close it.
    expect(value.match(/```/g)).toHaveLength(2)
    expect(value.startsWith("```json\n")).toBe(true)
  })

  it("truncates 5 000-character arguments to fit a field, and marks the cut", () => {
    const body = approvalMessage(approval([hostile]))
    const value = body.embeds[0]?.fields?.[0]?.value ?? ""
    expect(value.length).toBeLessThanOrEqual(embedLimits.fieldValue)
    expect(value).toContain("…")
    expect(value).toContain("Waiting for a decision")
    expect(richContentProblem(body)).toBeNull()
  })

  it("fits Discord's limits with many long calls (25 fields, 6 000 in all) and says how many more", () => {
    for (const n of [1, 2, 5, 6, 24, 25, 26, 40]) {
      const body = approvalMessage(approval(Array.from({ length: n }, () => hostile)))
      const embed = body.embeds[0]!
      expect(embed.fields?.length).toBeLessThanOrEqual(embedLimits.fields)
      expect(embedSize(embed)).toBeLessThanOrEqual(embedLimits.total)
      expect(richContentProblem(body)).toBeNull()
      if (n > 25) expect(embed.fields?.at(-1)?.value).toContain(`${n - 24} more`)
    }
  })

  it("custom ids stay within 100 characters and parse back to the button", () => {
    for (const approvalId of [1, 42, Number.MAX_SAFE_INTEGER]) {
      for (const target of [0, 4, "all"] as const) {
        for (const approve of [true, false]) {
          const id = customIdOf({ approvalId, target, approve })
          expect(id.length).toBeLessThanOrEqual(100)
          expect(parseCustomId(id)).toEqual({ approvalId, target, approve })
        }
      }
    }
    expect(parseCustomId("aurora:approval:1:0:maybe")).toBeNull()
    expect(parseCustomId("aurora:approval:99999999999999999:0:approve")).toBeNull()
    expect(parseCustomId("other:button")).toBeNull()
  })

  it("one Approve/Deny pair per call up to 5 calls; a decided call's pair is disabled", () => {
    const decided = approval(["{}", "{}"], {
      decisions: [{ approve: true, reason: "approved by alice (111)", decidedBy: "111", at: 1 }, null]
    })
    const body = approvalMessage(decided)
    expect(body.components).toHaveLength(2)
    expect(body.components.map((row) => row.components.map((b) => [b.style, b.disabled]))).toEqual([
      [[3, true], [4, true]],
      [[3, false], [4, false]]
    ])
    expect(body.components[1]?.components.map((b) => "custom_id" in b ? b.custom_id : "")).toEqual([
      "aurora:approval:42:1:approve",
      "aurora:approval:42:1:deny"
    ])
    expect(body.embeds[0]?.fields?.[0]?.value).toContain("✅ Approved: approved by alice (111)")
  })

  it("more than 5 calls: one Approve all / Deny all pair", () => {
    const body = approvalMessage(approval(Array.from({ length: 6 }, () => "{}")))
    expect(body.components).toHaveLength(1)
    expect(body.components[0]?.components.map((b) => "custom_id" in b ? b.custom_id : "")).toEqual([
      "aurora:approval:42:all:approve",
      "aurora:approval:42:all:deny"
    ])
  })

  it("a timed-out approval: every button disabled and the outcome written", () => {
    const body = approvalMessage(approval(["{}"], {
      decisions: [{ approve: false, reason: "no decision within 10 minutes", decidedBy: null, at: 600_000 }]
    }))
    expect(body.components.flatMap((row) => row.components.map((b) => b.disabled))).toEqual([true, true])
    expect(body.embeds[0]?.description).toContain("Timed out")
    expect(body.embeds[0]?.fields?.[0]?.value).toContain("⌛ Denied: no decision within 10 minutes")
  })
})

import { describe, expect, it } from "@effect/vitest"
import { otidFor, promptOtid } from "../../src/domain/Otid.js"

const uuidV5 = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe("otid", () => {
  it("is a version-5 UUID", () => {
    for (const id of ["1500000000000000001", "", "x".repeat(1000), "😀"]) expect(otidFor(id, "prompt")).toMatch(uuidV5)
  })

  it("is stable: the same message and step give the same id, on every call (a retry, a restart)", () => {
    expect(promptOtid("1500000000000000001")).toBe(otidFor("1500000000000000001", "prompt"))
    expect(otidFor("1500000000000000001", "prompt")).toBe(otidFor("1500000000000000001", "prompt"))
    // Pinned, so a journalled event replayed by a newer build keeps its otid. The standard v5 UUID:
    // Python's uuid.uuid5(UUID("6f0b3a52-c1d4-4e8f-9a7e-2d5b8c41f0a3"), "aurora:1500000000000000001:prompt").
    expect(promptOtid("1500000000000000001")).toBe("d5427623-ebf8-5d13-8911-7c00be200209")
  })

  it("is distinct per event and per step", () => {
    const ids = new Set<string>()
    for (let n = 0; n < 1000; n++) {
      const messageId = String(1500000000000000000n + BigInt(n))
      for (const step of ["prompt", "tool:call-1", "tool:call-2"]) ids.add(otidFor(messageId, step))
    }
    expect(ids.size).toBe(3000)
    // The separator keeps the parts apart (message ids are digits, so they never hold one).
    expect(otidFor("12", "3")).not.toBe(otidFor("1", "23"))
  })
})

/**
 * The error window's bucket arithmetic as plain functions: buckets aligned on their size, a bucket
 * in the window until exactly `windowMs` after its start, expired buckets pruned with their sums,
 * and the running counts agreeing with a recount.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  type BucketWindow,
  countOperation,
  emptyWindow,
  latestCounts,
  windowByType,
  windowCounts,
  type WindowSize
} from "../../../../src/services/health/ErrorStats/Window.js"

const size: WindowSize = { windowMs: 10_000, bucketMs: 1_000 }

const counted = (ops: ReadonlyArray<readonly [at: number, errorType?: string]>): BucketWindow =>
  ops.reduce((w, [at, errorType]) => countOperation(w, at, errorType, size), emptyWindow)

describe("error window", () => {
  it("operations in the same bucket share it; the bucket starts on a multiple of its size", () => {
    const w = counted([[1_200], [1_999, "LettaTimeout"], [2_000, "LettaTimeout"]])
    expect(w.past).toEqual([{ start: 1_000, total: 2, errors: 1, byType: { LettaTimeout: 1 } }])
    expect(w.current).toEqual({ start: 2_000, total: 1, errors: 1, byType: { LettaTimeout: 1 } })
    expect([w.pastTotal, w.pastErrors]).toEqual([2, 1])
    expect(latestCounts(w)).toEqual({ total: 3, errors: 2, rate: 2 / 3 })
  })

  it("a bucket leaves the window exactly windowMs after its start", () => {
    const w = counted([[0, "A"], [5_000, "B"]])
    expect(windowCounts(w, 9_999, size)).toEqual({ total: 2, errors: 2, rate: 1 })
    expect(windowCounts(w, 10_000, size)).toEqual({ total: 1, errors: 1, rate: 1 })
    expect(windowByType(w, 10_000, size)).toEqual({ B: 1 })
    expect(windowCounts(w, 15_000, size)).toEqual({ total: 0, errors: 0, rate: 0 })
  })

  it("counting prunes the expired buckets and their sums, so the running counts match a recount", () => {
    const ops: Array<readonly [number, string?]> = []
    for (let at = 0; at < 30_000; at += 700) ops.push(at % 2_100 === 0 ? [at, "LettaServerError"] : [at])
    const w = counted(ops)
    const now = 29_400 // the last operation
    expect(w.past.every((b) => now - b.start < size.windowMs)).toBe(true)
    expect(w.past.length).toBeLessThanOrEqual(size.windowMs / size.bucketMs)
    expect(latestCounts(w)).toEqual(windowCounts(w, now, size))
  })
})

/**
 * The sliding window behind the recent error rate and the alert, as bucket arithmetic: operations
 * are counted in buckets of `bucketMs` (aligned on multiples of it), a bucket belongs to the window
 * while `now - start < windowMs`, so memory stays at most window / bucket buckets. The finished
 * buckets are kept oldest first with running sums, the bucket being filled apart: recording is
 * O(1) but for one array copy per bucket, and the alert check needs no loop.
 * Plain functions on immutable values; the error statistics' state (./State.ts) embeds a window.
 */

export interface Bucket {
  readonly start: number
  readonly total: number
  readonly errors: number
  readonly byType: Readonly<Record<string, number>>
}

export interface BucketWindow {
  /** Finished buckets, oldest first, pruned when an operation is counted. */
  readonly past: ReadonlyArray<Bucket>
  /** The bucket being filled. */
  readonly current: Bucket | undefined
  /** Sums over `past`. */
  readonly pastTotal: number
  readonly pastErrors: number
}

export interface WindowSize {
  readonly windowMs: number
  readonly bucketMs: number
}

export interface RateSummary {
  readonly total: number
  readonly errors: number
  /** errors / total, 0 when there were no operations. */
  readonly rate: number
}

export const emptyWindow: BucketWindow = { past: [], current: undefined, pastTotal: 0, pastErrors: 0 }

export const rateOf = (errors: number, total: number): number => (total === 0 ? 0 : errors / total)

export const addType = (byType: Readonly<Record<string, number>>, type: string): Record<string, number> => ({
  ...byType,
  [type]: (byType[type] ?? 0) + 1
})

const inWindow = (bucket: Bucket, now: number, size: WindowSize): boolean => now - bucket.start < size.windowMs

const bucketsInWindow = (window: BucketWindow, now: number, size: WindowSize): Array<Bucket> =>
  [...window.past, ...(window.current === undefined ? [] : [window.current])].filter((b) => inWindow(b, now, size))

/** The window's counts as seen at `now`. */
export const windowCounts = (window: BucketWindow, now: number, size: WindowSize): RateSummary => {
  let total = 0
  let errors = 0
  for (const bucket of bucketsInWindow(window, now, size)) {
    total += bucket.total
    errors += bucket.errors
  }
  return { total, errors, rate: rateOf(errors, total) }
}

/** Error types within the window as seen at `now`. */
export const windowByType = (window: BucketWindow, now: number, size: WindowSize): Record<string, number> => {
  const byType: Record<string, number> = {}
  for (const bucket of bucketsInWindow(window, now, size)) {
    for (const [type, n] of Object.entries(bucket.byType)) byType[type] = (byType[type] ?? 0) + n
  }
  return byType
}

/** Moves a finished current bucket into `past` and drops the buckets that left the window. */
const slide = (window: BucketWindow, bucketStart: number, now: number, size: WindowSize): BucketWindow => {
  let { current, past, pastErrors, pastTotal } = window
  if (current !== undefined && current.start !== bucketStart) {
    past = [...past, current]
    pastTotal += current.total
    pastErrors += current.errors
    current = undefined
  }
  let expired = 0
  while (expired < past.length) {
    const bucket = past[expired]
    if (bucket === undefined || inWindow(bucket, now, size)) break
    pastTotal -= bucket.total
    pastErrors -= bucket.errors
    expired++
  }
  if (expired > 0) past = past.slice(expired)
  return { current, past, pastTotal, pastErrors }
}

/** Counts one operation at `now`, an error of `errorType` unless that is undefined. */
export const countOperation = (
  window: BucketWindow,
  now: number,
  errorType: string | undefined,
  size: WindowSize
): BucketWindow => {
  const bucketStart = now - (now % size.bucketMs)
  const slid = slide(window, bucketStart, now, size)
  const current = slid.current ?? { start: bucketStart, total: 0, errors: 0, byType: {} }
  return {
    ...slid,
    current: {
      start: bucketStart,
      total: current.total + 1,
      errors: current.errors + (errorType === undefined ? 0 : 1),
      byType: errorType === undefined ? current.byType : addType(current.byType, errorType)
    }
  }
}

/** The window's counts as of its last `countOperation`, from the running sums: no loop. */
export const latestCounts = (window: BucketWindow): RateSummary => {
  const total = window.pastTotal + (window.current?.total ?? 0)
  const errors = window.pastErrors + (window.current?.errors ?? 0)
  return { total, errors, rate: rateOf(errors, total) }
}

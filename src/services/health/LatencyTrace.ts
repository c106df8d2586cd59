/**
 * Diagnostics for where a mention's milliseconds go, off unless AURORA_TRACE_LATENCY is set (to a
 * path prefix). When on, every stage a mention passes on its way to the Letta request is stamped
 * with the wall clock at microsecond resolution (`performance.timeOrigin + performance.now()`, so
 * that stamps of two processes on one machine compare), and so is every garbage collection and
 * every stall of the event loop over 5 ms; the lines (`<epoch ms> <id> <stage>`) are written to
 * `<prefix>-<pid>.log` every second and when the process exits. bench/trace-latency.ts reads them.
 *
 * Off, a stage costs a comparison (`markStage`) or an `Effect.void` (`stage`): no clock read, no
 * allocation. The ids are a message id, or (in the Letta executor, which does not know the
 * message) the request's otid, which is derived from it.
 */
import * as Fs from "node:fs"
import { constants, type PerformanceEntry, PerformanceObserver } from "node:perf_hooks"
import { Effect } from "effect"

const prefix = process.env["AURORA_TRACE_LATENCY"]

/** True when stages are being recorded. */
export const latencyTraceOn = prefix !== undefined && prefix !== ""

let lines: Array<string> = []
let started = false

const nowEpoch = () => (performance.timeOrigin + performance.now()).toFixed(3)

const flush = () => {
  if (lines.length === 0 || prefix === undefined) return
  const out = `${lines.join("\n")}\n`
  lines = []
  Fs.appendFileSync(`${prefix}-${process.pid}.log`, out)
}

const gcKinds = new Map([
  [constants.NODE_PERFORMANCE_GC_MINOR, "minor"],
  [constants.NODE_PERFORMANCE_GC_MAJOR, "major"],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, "incremental"],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, "weakcb"]
])

/** Starts the GC observer, the loop-stall probe and the flushing, on the first stamp. */
const start = () => {
  started = true
  const gc = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const detail: unknown = (entry as PerformanceEntry & { readonly detail?: unknown }).detail
      const kind = typeof detail === "object" && detail !== null && "kind" in detail
        ? gcKinds.get(Number(detail.kind))
        : undefined
      lines.push(`${(performance.timeOrigin + entry.startTime).toFixed(3)} - gc ${entry.duration.toFixed(3)} ${kind ?? "?"}`)
    }
  })
  gc.observe({ entryTypes: ["gc"] })
  // A 1 ms timer that comes back late says the loop was busy (or the process off the CPU) meanwhile.
  let expected = performance.now() + 1
  const probe = setInterval(() => {
    const late = performance.now() - expected
    if (late > 5) lines.push(`${nowEpoch()} - stall ${late.toFixed(3)}`)
    expected = performance.now() + 1
  }, 1)
  probe.unref()
  setInterval(flush, 1000).unref()
  process.on("exit", flush)
}

/** Stamps `stage` for `id` now (a no-op when tracing is off). */
export const markStage = (id: string, stage: string): void => {
  if (!latencyTraceOn) return
  if (!started) start()
  lines.push(`${nowEpoch()} ${id} ${stage}`)
}

/** `markStage` as an Effect, for a step of a fiber. */
export const stage = (id: string, name: string): Effect.Effect<void> =>
  latencyTraceOn ? Effect.sync(() => markStage(id, name)) : Effect.void

/**
 * `fetch` with a stamp when it is called, for the Letta client when tracing: the time from the
 * executor's call to the request on the wire splits into the client's own work and fetch's. The
 * request is named by the otid in its body.
 */
export const tracedFetch: typeof fetch = (input, init) => {
  const otid = typeof init?.body === "string" ? /"otid":"([^"]+)"/.exec(init.body)?.[1] : undefined
  if (otid !== undefined) markStage(otid, "fetch")
  return fetch(input, init)
}

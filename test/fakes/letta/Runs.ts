/**
 * The fake Letta server's runs: a run starts with a messages request and plays one Behaviour onto
 * the response (SSE framing as the server: `data: <json>\n\n`, `data: [DONE]\n\n`,
 * `event: error\ndata: <json>\n\n`). Counted in flight per agent until it ends.
 *
 * How a run ends depends on its route:
 * - agents route (as this fake always did): when its response closes — "completed" when the
 *   response was ended, "aborted" when the connection closed first;
 * - conversations route (`detachable`), like the real server, where a client disconnect does not
 *   stop a run: the script goes on at its own pace after the client left (nothing written, tool
 *   calls recorded as `toolCallsDetached`) and the run ends "completed" at the script's end (or at
 *   its stop_reason item: the rest is the stream's tail), "cancelled" by a cancel, or "aborted"
 *   when the fake goes offline. A `Hang` before the stop reason never ends by itself.
 *
 * Node callbacks own the mutable state; nothing here is an Effect.
 */
import type * as Http from "node:http"
import type { RunRecord } from "./Records.js"
import { type Behaviour, type Frame, Items, type StreamItem } from "./Script.js"

export const sse = (data: unknown, event?: string) => `${event ? `event: ${event}\n` : ""}data: ${JSON.stringify(data)}\n\n`

export const json = (res: Http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  if (res.destroyed) return
  res.writeHead(status, { "content-type": "application/json", ...headers })
  res.end(body === undefined ? "" : JSON.stringify(body))
}

interface OpenRun {
  readonly res: Http.ServerResponse
  readonly detachable: boolean
  /** A `Drop` frame closed the connection: nothing more is written. */
  dropped: boolean
  /** A `stop_reason` item was played: the run is over on the server, only the stream's tail is left. */
  stopped: boolean
}

/** Tool names of a tool_call_message item (`tool_calls` list, else the deprecated `tool_call`). */
const toolNamesOf = (item: StreamItem): ReadonlyArray<string> => {
  if (item.message_type !== "tool_call_message") return []
  const list = Array.isArray(item["tool_calls"]) ? item["tool_calls"] : [item["tool_call"]]
  return list.flatMap((call: unknown) => {
    const name = typeof call === "object" && call !== null ? Reflect.get(call, "name") : undefined
    return typeof name === "string" ? [name] : []
  })
}

/**
 * `onChange`: a run's record changed. `onItem`: a run played a streamed item (filled in: id, date,
 * run id), whether the client saw it or had left.
 */
export const makeRuns = (onChange: () => void, onItem: (run: RunRecord, item: StreamItem) => void = () => {}) => {
  const runs = new Map<string, RunRecord>()
  const open = new Map<string, OpenRun>()
  const inFlight = new Map<string, number>()
  const maxInFlight = new Map<string, number>()
  let inFlightAll = 0
  let maxInFlightAll = 0
  let runCounter = 0
  let itemCounter = 0
  const timers = new Set<NodeJS.Timeout>()

  const later = (millis: number, f: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer)
      f()
    }, millis)
    timers.add(timer)
  }

  const update = (runId: string, f: (run: RunRecord) => RunRecord) => {
    const run = runs.get(runId)
    if (run === undefined) return
    runs.set(runId, f(run))
    onChange()
  }

  const isOpen = (runId: string) => open.has(runId)

  const finish = (runId: string, outcome: NonNullable<RunRecord["outcome"]>) => {
    const run = runs.get(runId)
    if (run === undefined || run.finishedAt !== undefined) return
    open.delete(runId)
    inFlight.set(run.agentId, (inFlight.get(run.agentId) ?? 1) - 1)
    inFlightAll -= 1
    update(runId, (r) => ({ ...r, finishedAt: Date.now(), outcome }))
  }

  const start = (agentId: string, runId: string, res: Http.ServerResponse, conversationId?: string) => {
    const detachable = conversationId !== undefined
    const record: RunRecord = {
      runId,
      agentId,
      ...(conversationId === undefined ? {} : { conversationId }),
      startedAt: Date.now(),
      toolCallsWritten: [],
      doneWritten: false
    }
    runs.set(runId, record)
    const run: OpenRun = { res, detachable, dropped: false, stopped: false }
    open.set(runId, run)
    const now = (inFlight.get(agentId) ?? 0) + 1
    inFlight.set(agentId, now)
    maxInFlight.set(agentId, Math.max(maxInFlight.get(agentId) ?? 0, now))
    inFlightAll += 1
    maxInFlightAll = Math.max(maxInFlightAll, inFlightAll)
    res.on("close", () => {
      if (!detachable) return finish(runId, res.writableFinished ? "completed" : "aborted")
      // The script reached its end, or its stop reason (what follows is only the stream's tail):
      // the run is over on the server, whether or not the client read it all.
      if (res.writableEnded || run.stopped) return finish(runId, "completed")
      if (isOpen(runId)) update(runId, (r) => ({ ...r, detachedAt: Date.now() }))
    })
  }

  const fill = <T extends Readonly<Record<string, unknown>>>(item: T, runId: string | undefined): T => {
    itemCounter += 1
    return {
      id: `message-${itemCounter}`,
      date: new Date().toISOString(),
      ...(runId === undefined ? {} : { run_id: runId }),
      ...item
    }
  }

  const writeFrames = (runId: string, run: OpenRun, frames: ReadonlyArray<Frame>, stampRunId: boolean) => {
    const { res } = run
    const step = (index: number): void => {
      if (!isOpen(runId)) return
      const live = !res.destroyed && !res.writableEnded && !run.dropped
      if (!live && !run.detachable) return
      const frame = frames[index]
      if (frame === undefined) {
        if (live) res.end()
        else finish(runId, "completed")
        return
      }
      switch (frame._tag) {
        case "Item": {
          if (frame.item.message_type === "stop_reason") {
            run.stopped = true
            if (!live) return finish(runId, "completed")
          }
          const item = fill(frame.item, stampRunId ? runId : undefined)
          if (live) res.write(sse(item))
          // Played, seen or not: the server acts on it either way (an approval request becomes pending).
          const record = runs.get(runId)
          if (record !== undefined) onItem(record, item)
          const names = toolNamesOf(frame.item)
          if (names.length > 0) {
            update(runId, (r) =>
              live
                ? { ...r, toolCallsWritten: [...r.toolCallsWritten, ...names] }
                : { ...r, toolCallsDetached: [...(r.toolCallsDetached ?? []), ...names] })
          }
          return step(index + 1)
        }
        case "ErrorEvent":
          if (live) res.write(sse(fill(frame.data, stampRunId ? runId : undefined), "error"))
          return step(index + 1)
        case "Raw":
          if (live) res.write(frame.text)
          return step(index + 1)
        case "Done":
          if (live) {
            res.write("data: [DONE]\n\n")
            update(runId, (r) => ({ ...r, doneWritten: true }))
          }
          return step(index + 1)
        case "Pause":
          return later(frame.millis, () => step(index + 1))
        case "Act":
          frame.act()
          return step(index + 1)
        case "Hang":
          return
        case "Drop":
          // end(), not destroy(): a reset could discard frames the client has not read yet.
          if (live) res.socket?.end()
          if (!run.detachable) return
          run.dropped = true
          return step(index + 1)
      }
    }
    step(0)
  }

  /** Plays a behaviour onto the run's response. */
  const play = (runId: string, behaviour: Behaviour) => {
    const run = open.get(runId)
    if (run === undefined) return
    const { res } = run
    switch (behaviour._tag) {
      case "HangBeforeHeaders":
        return
      case "Status":
        return later(behaviour.delayMs ?? 0, () => {
          // A detached run answered with a status ends there, on the server as well.
          if (res.destroyed) return run.detachable ? finish(runId, "completed") : undefined
          json(res, behaviour.status, behaviour.body, { ...behaviour.headers })
        })
      case "Stream":
        return later(behaviour.delayMs ?? 0, () => {
          if (res.destroyed && !run.detachable) return
          if (!res.destroyed) {
            res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
            res.flushHeaders()
          }
          writeFrames(runId, run, behaviour.frames, behaviour.withRunId !== false)
        })
    }
  }

  /**
   * Ends a run as cancelled, like the server: a stream whose headers were sent ends with
   * stop_reason cancelled and [DONE]. Whether the run was in flight.
   */
  const cancel = (runId: string): boolean => {
    const run = open.get(runId)
    // An agents-route run whose connection is gone is ending as aborted already.
    if (run === undefined || (!run.detachable && run.res.destroyed)) return false
    const { res } = run
    const live = !res.destroyed && !res.writableEnded && !run.dropped
    if (live && res.headersSent) {
      res.write(sse(fill(Items.stopReason("cancelled"), runId)))
      res.write("data: [DONE]\n\n")
    }
    finish(runId, "cancelled")
    if (!res.destroyed) res.end()
    return true
  }

  /** The fake went offline: the server's own runs (conversations route) die with it. */
  const abortDetachable = () => {
    for (const [runId, run] of [...open]) if (run.detachable) finish(runId, "aborted")
  }

  const openRuns = (conversationId: string): ReadonlyArray<string> =>
    [...open.keys()].filter((runId) => runs.get(runId)?.conversationId === conversationId)

  return {
    all: (): ReadonlyArray<RunRecord> => [...runs.values()],
    nextRunId: () => `run-${++runCounter}`,
    start,
    play,
    cancel,
    finish,
    abortDetachable,
    openRuns,
    inFlight: (agentId: string) => inFlight.get(agentId) ?? 0,
    maxInFlight: (agentId?: string) => (agentId === undefined ? maxInFlightAll : maxInFlight.get(agentId) ?? 0),
    clearTimers: () => {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
    }
  } as const
}

export type Runs = ReturnType<typeof makeRuns>

/**
 * The parent's handle on a bot running in a child process (bench/child.ts under tsx): spawn,
 * wait for ready, ask for CPU/RSS/counter snapshots, and stop it when the scope closes — asking
 * first, killing it (by its own pid) if it does not leave within a few seconds.
 */
import { type ChildProcess, fork } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Data, Duration, Effect, type Scope } from "effect"
import { startScriptNodeFlags } from "../test/fakes/startScript.js"
import type { ChildConfig, ChildMessage, Counters, Mark, MemorySample, ParentRequest } from "./protocol.js"

export class BotProcessError extends Data.TaggedError("BotProcessError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

export interface BotProcess {
  readonly pid: number
  readonly startToReadyMs: number
  /** Spawn to ready, as the parent saw it (node start and module loading included). */
  readonly spawnToReadyMs: number
  readonly mark: Effect.Effect<Mark, BotProcessError>
  readonly resetPeak: Effect.Effect<void, BotProcessError>
  /** A full GC (the child runs with --expose-gc), then a mark. */
  readonly gcMark: Effect.Effect<Mark, BotProcessError>
  readonly counters: Effect.Effect<Counters, BotProcessError>
  /** Diagnostics: a V8 heap snapshot of the child written to `path`, then a mark. */
  readonly heapSnapshot: (path: string) => Effect.Effect<Mark, BotProcessError>
  /** Diagnostics: the child's memory every 250 ms since the last resetPeak. */
  readonly timeline: Effect.Effect<ReadonlyArray<MemorySample>, BotProcessError>
  /** Diagnostics: a V8 CPU profile of the child from profileStart to profileStop (written to `path`). */
  readonly profileStart: Effect.Effect<Mark, BotProcessError>
  readonly profileStop: (path: string) => Effect.Effect<Mark, BotProcessError>
}

/**
 * The node flags Aurora runs with: read from package.json's `start` script (the one place they
 * are set; README's service examples repeat them and say why), so that the bench's Aurora child
 * runs as `npm start` does.
 */
export const AuroraNodeFlags: ReadonlyArray<string> = startScriptNodeFlags(
  Path.join(Path.dirname(fileURLToPath(import.meta.url)), "..")
)

/**
 * BENCH_NODE_FLAGS="--flag1 --flag2" replaces AuroraNodeFlags for the Aurora child (for trying
 * V8 settings; a run with it measures a configuration that `npm start` does not use).
 */
export const auroraNodeFlags = (): ReadonlyArray<string> => {
  const override = process.env["BENCH_NODE_FLAGS"]
  return override === undefined ? AuroraNodeFlags : override.split(/\s+/).filter((flag) => flag.length > 0)
}

const childEntry = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "child.ts")
const requestTimeout = Duration.seconds(10)

type Reply = Extract<ChildMessage, { type: "reply" }>
/** A request without its id (the id is the process handle's to give). */
type RequestBody = ParentRequest extends infer R ? R extends ParentRequest ? Omit<R, "id"> : never : never

export const spawnBot = (
  config: Omit<ChildConfig, "dataDir">
): Effect.Effect<BotProcess, BotProcessError, Scope.Scope> =>
  Effect.gen(function*() {
    const dataDir = yield* Effect.acquireRelease(
      Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "aurora-bench-"))),
      (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
    )
    const spawnedAt = performance.now()
    const pending = new Map<number, (reply: Reply) => void>()
    let nextId = 0
    let readyMessage: ((message: ChildMessage) => void) | undefined

    const child: ChildProcess = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(childEntry, [], {
          // BENCH_PROFILE=<dir> writes a V8 CPU profile of each bot there (for finding where time goes).
          execArgv: [
            ...(config.bot === "aurora" ? auroraNodeFlags() : []),
            "--import",
            "tsx",
            "--expose-gc",
            ...(process.env["BENCH_PROFILE"] ? ["--cpu-prof", `--cpu-prof-dir=${process.env["BENCH_PROFILE"]}`] : [])
          ],
          env: { ...process.env, BENCH_CHILD: JSON.stringify({ ...config, dataDir } satisfies ChildConfig) },
          stdio: ["ignore", "inherit", "inherit", "ipc"]
        })
      ),
      (child) => stopChild(child, pending, () => nextId++)
    )
    child.on("message", (message: ChildMessage) => {
      if (message.type === "reply") {
        pending.get(message.id)?.(message)
        pending.delete(message.id)
      } else readyMessage?.(message)
    })

    const ready = yield* Effect.async<Extract<ChildMessage, { type: "ready" }>, BotProcessError>((resume) => {
      readyMessage = (message) => {
        if (message.type === "ready") resume(Effect.succeed(message))
        else if (message.type === "failed") resume(Effect.fail(new BotProcessError({ reason: message.reason })))
      }
      child.once("exit", (code) => resume(Effect.fail(new BotProcessError({ reason: `child exited (${code})` }))))
    }).pipe(
      Effect.timeoutFail({
        duration: Duration.seconds(60),
        onTimeout: () => new BotProcessError({ reason: "child not ready within 60 s" })
      })
    )
    const spawnToReadyMs = performance.now() - spawnedAt

    const request = (
      body: RequestBody,
      timeout = requestTimeout
    ): Effect.Effect<Reply, BotProcessError> =>
      Effect.async<Reply, BotProcessError>((resume) => {
        const id = nextId++
        pending.set(id, (reply) => resume(Effect.succeed(reply)))
        child.send({ ...body, id } satisfies ParentRequest)
        return Effect.sync(() => pending.delete(id))
      }).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new BotProcessError({ reason: `no reply to ${body.cmd}` })
        })
      )
    const withMark = (reply: Reply) =>
      reply.mark === undefined ? Effect.fail(new BotProcessError({ reason: "reply without a mark" })) : Effect.succeed(reply.mark)

    return {
      pid: child.pid ?? -1,
      startToReadyMs: ready.startToReadyMs,
      spawnToReadyMs,
      mark: Effect.flatMap(request({ cmd: "mark" }), withMark),
      resetPeak: Effect.asVoid(request({ cmd: "resetPeak" })),
      gcMark: Effect.flatMap(request({ cmd: "gc" }), withMark),
      counters: Effect.flatMap(request({ cmd: "counters" }), (reply) =>
        reply.counters === undefined
          ? Effect.fail(new BotProcessError({ reason: "reply without counters" }))
          : Effect.succeed(reply.counters)),
      heapSnapshot: (path) => Effect.flatMap(request({ cmd: "heapSnapshot", path }, Duration.minutes(2)), withMark),
      timeline: Effect.map(request({ cmd: "timeline" }), (reply) => reply.timeline ?? []),
      profileStart: Effect.flatMap(request({ cmd: "profileStart" }), withMark),
      profileStop: (path) => Effect.flatMap(request({ cmd: "profileStop", path }, Duration.minutes(1)), withMark)
    }
  })

/** Asks the child to stop, waits for it to exit, and kills it if it lingers. */
const stopChild = (
  child: ChildProcess,
  pending: Map<number, (reply: Reply) => void>,
  nextId: () => number
): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    const timer = setTimeout(() => {
      process.stderr.write(`bench: bot process ${child.pid} did not exit within 10 s of stop; killed\n`)
      child.kill("SIGKILL")
    }, 10_000)
    child.once("exit", () => {
      clearTimeout(timer)
      pending.clear()
      resume(Effect.void)
    })
    if (child.connected) child.send({ id: nextId(), cmd: "stop" } satisfies ParentRequest)
    else child.kill("SIGTERM")
  })

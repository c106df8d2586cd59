/**
 * The built program (`node <the start script's flags> dist/main.js`) as a child process, as an
 * operator runs it, with what a fault-injection test needs to watch and hurt it: its JSON log
 * lines (waited on as they arrive, never polled), signals, its exit, its peak resident memory
 * (the kernel's VmHWM) and its `/metrics`. The child is SIGKILLed (by its own pid) when the scope closes, if still running.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Path from "node:path"
import { Data, Deferred, Duration, Effect, Exit, FiberId, type Scope } from "effect"
import { startScriptNodeFlags } from "../fakes/startScript.js"

export const root = Path.resolve(import.meta.dirname, "../..")
export const builtMain = Path.join(root, "dist", "main.js")

export class FaultTimeout extends Data.TaggedError("FaultTimeout")<{ readonly waitingFor: string }> {
  override get message() {
    return `timed out waiting for ${this.waitingFor}`
  }
}

export class ScrapeFailed extends Data.TaggedError("ScrapeFailed")<{ readonly reason: string }> {}

/** One line of output: the parsed JSON log object, and always the `raw` text (the only field of a non-JSON line such as `aurora: ...`). */
export type LogLine = Readonly<Record<string, unknown>> & { readonly raw: string }

export interface ExitStatus {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface AuroraProcess {
  readonly pid: number
  /** Everything written to stdout and stderr so far. */
  readonly output: () => string
  readonly lines: () => ReadonlyArray<LogLine>
  /** The first line (already written or still to come) matching `predicate`. */
  readonly waitForLog: (
    predicate: (line: LogLine) => boolean,
    label: string,
    timeout?: Duration.DurationInput
  ) => Effect.Effect<LogLine, FaultTimeout>
  /** Resolves when the process has exited. */
  readonly exit: Effect.Effect<ExitStatus>
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<void>
  /** Peak resident set size so far in MiB (VmHWM), null once the process is gone. */
  readonly peakRssMiB: Effect.Effect<number | null>
  /** The current `/metrics`, parsed (needs `httpPort`). */
  readonly metrics: Effect.Effect<Metrics, ScrapeFailed>
}

export interface SpawnOptions {
  readonly discordApiUrl: string
  readonly discordToken: string
  readonly lettaUrl: string
  readonly dataDir: string
  /** AURORA_HTTP_PORT (for /metrics). */
  readonly httpPort?: number
  readonly logLevel?: "debug" | "info" | "warning" | "error"
  readonly env?: Readonly<Record<string, string>>
  /** Run as this user and group (to make a directory read-only for the program when the tests run as root). */
  readonly user?: { readonly uid: number; readonly gid: number }
}

/** A generous bound for a real event on a loaded 2-core machine. */
export const eventWait = Duration.seconds(30)

/** Prometheus text, parsed into `name{labels}` -> value. */
export class Metrics {
  constructor(readonly samples: ReadonlyMap<string, number>) {}

  static parse(text: string): Metrics {
    const samples = new Map<string, number>()
    for (const line of text.split("\n")) {
      if (line.startsWith("#") || line.trim() === "") continue
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line)
      if (match?.[1] !== undefined && match[2] !== undefined) samples.set(match[1], Number(match[2]))
    }
    return new Metrics(samples)
  }

  /** One series by its name and exact label set (label order as Aurora renders them), 0 when absent. */
  value(name: string, labels: Readonly<Record<string, string>> = {}): number {
    const rendered = Object.entries(labels).map(([key, value]) => `${key}="${value}"`).join(",")
    return this.samples.get(rendered === "" ? name : `${name}{${rendered}}`) ?? 0
  }

  /** The sum over every series of a metric (all label values). */
  sum(name: string): number {
    let total = 0
    for (const [key, value] of this.samples) if (key === name || key.startsWith(`${name}{`)) total += value
    return total
  }
}

const parseLine = (raw: string): LogLine => {
  if (raw.startsWith("{")) {
    try {
      const parsed: unknown = JSON.parse(raw)
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) return { ...parsed, raw }
    } catch {
      // not JSON after all: kept as text below
    }
  }
  return { raw }
}

const httpGet = (url: string): Effect.Effect<string, ScrapeFailed> =>
  Effect.async<string, ScrapeFailed>((resume) => {
    const request = Http.get(url, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8")
        resume(
          response.statusCode === 200
            ? Effect.succeed(body)
            : Effect.fail(new ScrapeFailed({ reason: `${url} answered ${response.statusCode}` }))
        )
      })
    })
    request.on("error", (error) => resume(Effect.fail(new ScrapeFailed({ reason: `${url}: ${error.message}` }))))
    return Effect.sync(() => request.destroy())
  })

/** VmHWM from /proc (Linux): the peak resident set of a live process, in MiB. */
const readPeakRss = (pid: number): number | null => {
  try {
    const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const kib = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]
    return kib === undefined ? null : Number(kib) / 1024
  } catch {
    return null
  }
}

export const spawnAurora = (options: SpawnOptions): Effect.Effect<AuroraProcess, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const env: Record<string, string> = {
        PATH: process.env["PATH"] ?? "",
        HOME: process.env["HOME"] ?? "/tmp",
        LOG_FORMAT: "json",
        LOG_LEVEL: options.logLevel ?? "info",
        DISCORD_TOKEN: options.discordToken,
        DISCORD_API_URL: options.discordApiUrl,
        LETTA_BASE_URL: options.lettaUrl,
        AURORA_DATA_DIR: options.dataDir,
        ...(options.httpPort === undefined ? {} : { AURORA_HTTP_PORT: String(options.httpPort) }),
        ...options.env
      }
      const child: ChildProcess = spawn(process.execPath, [...startScriptNodeFlags(root), builtMain], {
        cwd: root,
        env,
        stdio: ["ignore", "pipe", "pipe"],
        ...(options.user === undefined ? {} : { uid: options.user.uid, gid: options.user.gid })
      })
      let output = ""
      const lines: Array<LogLine> = []
      const waiters = new Set<{ readonly predicate: (line: LogLine) => boolean; readonly deferred: Deferred.Deferred<LogLine> }>()
      const partial = { stdout: "", stderr: "" }
      const onChunk = (stream: "stdout" | "stderr") => (chunk: Buffer) => {
        const text = chunk.toString()
        output += text
        const pieces = (partial[stream] + text).split("\n")
        partial[stream] = pieces.pop() ?? ""
        for (const raw of pieces) {
          if (raw.trim() === "") continue
          const line = parseLine(raw)
          lines.push(line)
          for (const waiter of waiters) {
            if (waiter.predicate(line)) {
              waiters.delete(waiter)
              Deferred.unsafeDone(waiter.deferred, Exit.succeed(line))
            }
          }
        }
      }
      child.stdout?.on("data", onChunk("stdout"))
      child.stderr?.on("data", onChunk("stderr"))
      const exited = Deferred.unsafeMake<ExitStatus>(FiberId.none)
      child.on("exit", (code, signal) => Deferred.unsafeDone(exited, Exit.succeed({ code, signal })))
      const pid = child.pid ?? -1

      const aurora: AuroraProcess = {
        pid,
        output: () => output,
        lines: () => lines,
        waitForLog: (predicate, label, timeout = eventWait) =>
          Effect.suspend(() => {
            const found = lines.find(predicate)
            if (found !== undefined) return Effect.succeed(found)
            const waiter = { predicate, deferred: Deferred.unsafeMake<LogLine>(FiberId.none) }
            waiters.add(waiter)
            return Deferred.await(waiter.deferred).pipe(
              Effect.timeoutFail({ duration: timeout, onTimeout: () => new FaultTimeout({ waitingFor: label }) }),
              Effect.ensuring(Effect.sync(() => waiters.delete(waiter)))
            )
          }),
        exit: Deferred.await(exited),
        kill: (signal) => Effect.sync(() => void (child.exitCode === null && child.signalCode === null && child.kill(signal))),
        peakRssMiB: Effect.sync(() => (child.exitCode === null && child.signalCode === null ? readPeakRss(pid) : null)),
        metrics: options.httpPort === undefined
          ? Effect.fail(new ScrapeFailed({ reason: "no AURORA_HTTP_PORT given" }))
          : Effect.map(httpGet(`http://127.0.0.1:${options.httpPort}/metrics`), Metrics.parse)
      }
      return { aurora, child }
    }),
    ({ child }) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.kill("SIGKILL")
      })
  ).pipe(Effect.map(({ aurora }) => aurora))

/** Bounds a wait on a real event with a label that says what did not happen. */
export const bounded = <A, E, R>(label: string, effect: Effect.Effect<A, E, R>, timeout: Duration.DurationInput = eventWait) =>
  effect.pipe(Effect.timeoutFail({ duration: timeout, onTimeout: () => new FaultTimeout({ waitingFor: label }) }))

/** The message of a JSON log line ("" for other lines). */
export const messageOf = (line: LogLine): string => (typeof line["message"] === "string" ? line["message"] : "")

/**
 * BENCH_OPS=1: counts the Effect runtime operations and fibers of the Aurora child and prints them
 * to stderr when the child stops (diagnostics for finding where per-mention runtime work goes; it
 * slows the child down, so its CPU figures are not comparable).
 *
 * - By default, by the span current when each operation ran.
 * - BENCH_OPS_BY=op: by span and kind of operation (OnSuccess, Sync, Async, Commit = suspend/gen...).
 * - BENCH_OPS_BY=src: by the Aurora module the operation belongs to. An operation whose own code
 *   (its continuation, thunk or generator) is in an Aurora module is charged to it; one whose code
 *   is a library's (Effect's combinators: `zipRight`, `map`, ...) or that has none (`succeed`) is
 *   charged to the innermost Aurora frame waiting on its fiber's stack (a generator's step, a
 *   continuation), shown as `<module> (via library)`. Source positions are read through V8
 *   natives (`--allow-natives-syntax`, set at run time) and the debugger's script list.
 * - BENCH_OPS_BY=line: the same, with the source line of the function (through tsx's inline source map).
 * - BENCH_OPS_SPAN=<name>: only the operations that ran under that span (e.g. `dispatch`).
 */
import * as Inspector from "node:inspector"
import * as Module from "node:module"
import * as V8 from "node:v8"
import { type Context, Effect, type Fiber, type Option, Supervisor } from "effect"

type By = "span" | "op" | "src" | "line"

const byOf = (value: string | undefined): By => value === "op" || value === "src" || value === "line" ? value : "span"

const spanName = (fiber: Fiber.RuntimeFiber<unknown, unknown>): string => {
  const span = (fiber as { currentSpan?: { _tag: string; name?: string } }).currentSpan
  return span === undefined ? "(no span)" : span._tag === "Span" ? span.name ?? "?" : "(external)"
}

type Natives = {
  readonly scriptId: (f: unknown) => number
  readonly position: (f: unknown) => number
  readonly source: (f: unknown) => string
  readonly generatorFunction: (g: unknown) => unknown
}

/** V8's own accessors for a function's script and position (`new Function` parses `%` calls once the flag is on). */
const natives = (): Natives => {
  V8.setFlagsFromString("--allow-natives-syntax")
  const call = (name: string) => new Function("f", `return %${name}(f)`) as (f: unknown) => never
  return {
    scriptId: call("FunctionGetScriptId"),
    position: call("FunctionGetScriptSourcePosition"),
    source: call("FunctionGetScriptSource"),
    generatorFunction: call("GeneratorGetFunction")
  }
}

/** The function whose code an operation runs (see the instruction shapes in effect/internal/core.js). */
const codeOf = (effect: object, generatorFunction: (g: unknown) => unknown): unknown => {
  const field = (name: string): unknown => Reflect.get(effect, name)
  switch (field("_op")) {
    case "OnSuccess":
    case "OnFailure":
    case "OnSuccessAndFailure":
    case "UpdateRuntimeFlags":
      return field("effect_instruction_i1")
    case "Sync":
    case "Async":
    case "WithRuntime":
    case "While":
      return field("effect_instruction_i0")
    case "Iterator":
      return generatorFunction(field("effect_instruction_i0"))
    case "Commit":
      return field("commit")
    default:
      return undefined
  }
}

/** Where a script lives, shortened: `src/programs/Dispatch.ts`, or the package for a library (`effect`). */
const moduleOf = (url: string): { readonly name: string; readonly aurora: boolean } => {
  const inModules = url.lastIndexOf("/node_modules/")
  if (inModules >= 0) {
    const rest = url.slice(inModules + "/node_modules/".length).split("/")
    return { name: rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0] ?? url, aurora: false }
  }
  const inSrc = url.lastIndexOf("/src/")
  return inSrc >= 0 ? { name: url.slice(inSrc + 1), aurora: true } : { name: url || "(native)", aurora: false }
}

/** The source line of a position in tsx's output (minified, one line or a few), from its inline source map. */
const originalLine = (text: string, position: number): number | undefined => {
  const map = /sourceMappingURL=data:application\/json;base64,([A-Za-z0-9+/=]+)/.exec(text)?.[1]
  if (map === undefined) return undefined
  const consumer = sourceMaps.get(map) ?? new Module.SourceMap(JSON.parse(Buffer.from(map, "base64").toString("utf8")))
  sourceMaps.set(map, consumer)
  const before = text.slice(0, position).split("\n")
  const entry = consumer.findEntry(before.length - 1, (before[before.length - 1] ?? "").length)
  return "originalLine" in entry ? entry.originalLine + 1 : undefined
}
const sourceMaps = new Map<string, Module.SourceMap>()

export class OpCounter extends Supervisor.AbstractSupervisor<void> {
  readonly ops = new Map<string, number>()
  readonly fibers = new Map<string, number>()
  /** fiber id -> its parent's id and the span current in the parent when it was forked */
  readonly origin = new Map<number, string>()
  readonly opsByFiber = new Map<number, number>()
  /** BENCH_OPS_BY=src|line: "scriptId:position" -> a function found there, and its count */
  readonly byCode = new Map<string, { readonly sample: unknown; count: number; charged: Map<string, number> }>()
  readonly codeCache = new WeakMap<object, { readonly key: string; readonly code: unknown } | null>()
  readonly auroraScripts = new Map<number, boolean>()
  readonly by = byOf(process.env["BENCH_OPS_BY"])
  readonly onlySpan = process.env["BENCH_OPS_SPAN"]
  readonly natives = this.by === "src" || this.by === "line" ? natives() : undefined
  /** scriptId -> url, from the debugger's list of parsed scripts (only in these modes: it costs while on). */
  readonly urls = new Map<string, string>()
  value = Effect.void

  constructor() {
    super()
    if (this.natives === undefined) return
    const session = new Inspector.Session()
    session.connect()
    session.on("Debugger.scriptParsed", (message) => this.urls.set(message.params.scriptId, message.params.url))
    session.post("Debugger.enable")
  }

  override onStart<A, E, R>(
    _context: Context.Context<R>,
    _effect: Effect.Effect<A, E, R>,
    parent: Option.Option<Fiber.RuntimeFiber<unknown, unknown>>,
    fiber: Fiber.RuntimeFiber<A, E>
  ): void {
    const key = parent._tag === "Some" ? `#${parent.value.id().id} ${spanName(parent.value)}` : "(root)"
    this.origin.set(fiber.id().id, key)
    this.fibers.set(key, (this.fibers.get(key) ?? 0) + 1)
  }

  override onEffect<A, E>(fiber: Fiber.RuntimeFiber<A, E>, effect: Effect.Effect<unknown, unknown, unknown>): void {
    const span = spanName(fiber)
    if (this.onlySpan !== undefined && span !== this.onlySpan) return
    const op = (effect as { _op?: string })._op ?? "?"
    if (this.natives !== undefined) return this.countByCode(fiber, effect)
    const key = this.by === "op" ? `${span} ${op}` : span
    this.ops.set(key, (this.ops.get(key) ?? 0) + 1)
    if (span === "(no span)") {
      const id = fiber.id().id
      this.opsByFiber.set(id, (this.opsByFiber.get(id) ?? 0) + 1)
    }
  }

  private countByCode(fiber: object, effect: object): void {
    const own = this.auroraCode(effect)
    if (own !== null) return this.charge(own.key, own.code, undefined)
    // The innermost Aurora frame waiting on the fiber's stack (a gen step, a continuation).
    const stack = (fiber as { _stack?: ReadonlyArray<object> })._stack ?? []
    for (let i = stack.length - 1; i >= 0; i--) {
      const frame = this.auroraCode(stack[i] ?? {})
      if (frame !== null) return this.charge(frame.key, frame.code, "via library")
    }
    this.charge("library", undefined, undefined)
  }

  /** The Aurora function an instruction runs (cached per instruction), or null. */
  private auroraCode(effect: object): { readonly key: string; readonly code: unknown } | null {
    const cached = this.codeCache.get(effect)
    if (cached !== undefined) return cached
    const natives = this.natives!
    const code = codeOf(effect, natives.generatorFunction)
    const scriptId = typeof code === "function" ? natives.scriptId(code) : -1
    const found = scriptId >= 0 && this.isAurora(scriptId) ? { key: `${scriptId}:${natives.position(code)}`, code } : null
    this.codeCache.set(effect, found)
    return found
  }

  private isAurora(scriptId: number): boolean {
    const known = this.auroraScripts.get(scriptId)
    if (known !== undefined) return known
    const aurora = moduleOf(this.urls.get(String(scriptId)) ?? "").aurora
    this.auroraScripts.set(scriptId, aurora)
    return aurora
  }

  private charge(key: string, sample: unknown, note: string | undefined): void {
    let entry = this.byCode.get(key)
    if (entry === undefined) {
      entry = { sample, count: 0, charged: new Map() }
      this.byCode.set(key, entry)
    }
    if (note === undefined) entry.count++
    else entry.charged.set(note, (entry.charged.get(note) ?? 0) + 1)
  }

  private codeReport(): string {
    const urls = this.urls
    const natives = this.natives!
    const labelOf = (key: string, sample: unknown): string => {
      if (key === "library") return "(no Aurora code on the fiber's stack)"
      const [scriptId = "", position = "0"] = key.split(":")
      const module = moduleOf(urls.get(scriptId) ?? "")
      if (this.by === "src" || typeof sample !== "function") return module.name
      return `${module.name}:${originalLine(natives.source(sample), Number(position)) ?? "?"}`
    }
    const totals = new Map<string, number>()
    const add = (label: string, n: number) => totals.set(label, (totals.get(label) ?? 0) + n)
    const samples = new Map<string, unknown>()
    for (const [key, entry] of this.byCode) if (entry.sample !== undefined) samples.set(key, entry.sample)
    for (const [key, entry] of this.byCode) {
      const label = labelOf(key, samples.get(key))
      if (entry.count > 0) add(label, entry.count)
      for (const [note, n] of entry.charged) add(`${label} (${note})`, n)
    }
    const header = this.onlySpan === undefined ? "" : ` (span ${this.onlySpan} only)`
    return `ops by source${header}:\n${lines(totals)}\n`
  }

  report(): string {
    if (this.natives !== undefined) return this.codeReport()
    const byOrigin = new Map<string, number>()
    for (const [id, n] of this.opsByFiber) {
      const key = n > 5000 ? `fiber #${id} (from ${this.origin.get(id)})` : `short fibers from ${this.origin.get(id)}`
      byOrigin.set(key, (byOrigin.get(key) ?? 0) + n)
    }
    let fibers = 0
    for (const n of this.fibers.values()) fibers += n
    return `ops by span:\n${lines(this.ops)}\nfibers started, by parent (${fibers} in all):\n${
      lines(this.fibers)
    }\nops without a span, by fiber:\n${lines(byOrigin)}\n`
  }
}

const lines = (map: Map<string, number>) =>
  [...map].sort((a, b) => b[1] - a[1]).slice(0, 60).map(([k, n]) => `${String(n).padStart(9)} ${k}`).join("\n")

/**
 * Summarises a V8 .cpuprofile (bench/overhead.ts under BENCH_WINDOW_PROFILE, or node --cpu-prof):
 * self time by module (a package, or a file of src/), the top functions by self time, and time by
 * "owner": each sample is charged to the nearest frame of the stack that is in src/ (else to the
 * nearest package frame that is neither Effect's nor node's), so that a library's time lands on the Aurora
 * module that called it. The Effect runtime's own loop (no src/ frame on the stack) stays
 * "effect (runtime)".
 *
 *   node --import tsx bench/profile-summary.ts <file.cpuprofile> [per-unit count, e.g. 2000] [top N]
 *
 * With a count, every figure is also given in µs per unit (e.g. per delivered mention).
 */
import * as Fs from "node:fs"

interface Frame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}
interface ProfileNode {
  readonly id: number
  readonly callFrame: Frame
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
  readonly startTime: number
  readonly endTime: number
}

const [file, perArg, topArg] = process.argv.slice(2)
if (file === undefined) {
  process.stderr.write("usage: profile-summary.ts <file.cpuprofile> [count] [top]\n")
  process.exit(2)
}
const per = perArg === undefined ? undefined : Number(perArg)
const top = Number(topArg ?? "40")
const profile: Profile = JSON.parse(Fs.readFileSync(file, "utf8"))

const byId = new Map<number, ProfileNode>()
const parent = new Map<number, number>()
for (const node of profile.nodes) {
  byId.set(node.id, node)
  for (const child of node.children ?? []) parent.set(child, node.id)
}

/** A frame's module: `pkg` for node_modules (scoped names kept), `src/...` for Aurora, else the special name. */
const moduleOf = (frame: Frame): string => {
  const url = frame.url
  if (url === "") return frame.functionName.startsWith("(") ? frame.functionName : "(native)"
  const nm = url.lastIndexOf("/node_modules/")
  if (nm >= 0) {
    const rest = url.slice(nm + "/node_modules/".length).split("/")
    const pkg = rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0] ?? "?"
    if (pkg === "effect") return `effect/${rest.slice(rest.indexOf("internal") >= 0 ? rest.indexOf("internal") : 2).join("/")}`
    return pkg
  }
  const src = url.indexOf("/src/")
  if (src >= 0) return url.slice(src + 1)
  if (url.startsWith("node:")) return url
  const bench = url.indexOf("/bench/")
  if (bench >= 0) return url.slice(bench + 1)
  return url
}

const isEffect = (module: string) => module.startsWith("effect/") || module.startsWith("@effect/")

/** Time of each sample (µs): the next delta, as V8 records it. */
const selfUs = new Map<number, number>()
let total = 0
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i] ?? 0
  const dt = profile.timeDeltas[i + 1] ?? 0
  selfUs.set(id, (selfUs.get(id) ?? 0) + dt)
  total += dt
}

const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us)
const byModule = new Map<string, number>()
const byFunction = new Map<string, number>()
const byOwner = new Map<string, number>()
const ownerCache = new Map<number, string>()

/** The nearest src/ frame up the stack, else the nearest non-Effect package, else the leaf's module. */
const ownerOf = (id: number): string => {
  const cached = ownerCache.get(id)
  if (cached !== undefined) return cached
  let fallback: string | undefined
  let current: number | undefined = id
  let owner: string | undefined
  while (current !== undefined) {
    const node = byId.get(current)
    if (node === undefined) break
    const module = moduleOf(node.callFrame)
    if (module.startsWith("src/")) {
      owner = module
      break
    }
    if (fallback === undefined && node.callFrame.url !== "" && !isEffect(module) && !module.startsWith("node:")) {
      fallback = module
    }
    current = parent.get(current)
  }
  const leaf = byId.get(id)
  const leafModule = leaf === undefined ? "?" : moduleOf(leaf.callFrame)
  const result = owner ?? fallback ?? (isEffect(leafModule) ? "effect (runtime)" : leafModule)
  ownerCache.set(id, result)
  return result
}

for (const [id, us] of selfUs) {
  const node = byId.get(id)
  if (node === undefined) continue
  const module = moduleOf(node.callFrame)
  add(byModule, module, us)
  add(byFunction, `${node.callFrame.functionName || "(anonymous)"} ${module}:${node.callFrame.lineNumber + 1}`, us)
  add(byOwner, ownerOf(id), us)
}

/**
 * The stage of the mention path a module belongs to (BENCHMARKS.md's per-stage budget), or
 * undefined for a module that only carries work (Effect, node internals, the shared HTTP pool).
 */
const stageOfModule = (module: string): string | undefined => {
  if (module.startsWith("(")) return module === "(idle)" || module === "(garbage collector)" ? module : undefined
  if (module.startsWith("src/services/prompt/ContextService")) return "context"
  if (module.startsWith("src/services/prompt/")) return "prompt"
  if (module.startsWith("src/services/discord/TypingIndicator") || module.startsWith("@discordjs/rest")) return "typing (REST)"
  if (module.startsWith("src/services/discord/") || module.startsWith("src/programs/Listen")) return "intake"
  if (module.startsWith("src/services/queue/") || module.includes("SqlEventJournal") || module.includes("GroupCommit")) {
    return "queue + journal"
  }
  if (module.includes("SqlRunLog") || module.includes("RunRecording")) return "runs log"
  if (module.includes("SqlConversationStore") || module.includes("dispatch/Conversation")) return "conversations"
  if (module.startsWith("src/programs/")) return "dispatch"
  if (module.startsWith("src/services/letta/") || module.startsWith("@letta-ai/") || module.includes("deps/undici")) {
    return "Letta client"
  }
  if (module.startsWith("src/services/health/")) return "metrics/logs"
  if (module.startsWith("src/")) return `other ${module}`
  if (module === "discord.js" || module.startsWith("@discordjs/") || module === "ws" || module.startsWith("@sapphire/")) {
    return "discord.js"
  }
  if (module === "better-sqlite3" || module.startsWith("@effect/sql")) return "sqlite (unattributed)"
  if (module.startsWith("bench/")) return "bench child"
  return undefined
}

/** A sample's stage: the nearest frame up its stack whose module has one, else its leaf's kind. */
const stageCache = new Map<number, string>()
const stageOf = (id: number): string => {
  const cached = stageCache.get(id)
  if (cached !== undefined) return cached
  let current: number | undefined = id
  let stage: string | undefined
  while (current !== undefined && stage === undefined) {
    const node = byId.get(current)
    if (node === undefined) break
    stage = stageOfModule(moduleOf(node.callFrame))
    current = parent.get(current)
  }
  const leaf = byId.get(id)
  const leafModule = leaf === undefined ? "?" : moduleOf(leaf.callFrame)
  const result = stage ??
    (isEffect(leafModule)
      ? "effect runtime (no src/ frame)"
      : leafModule === "undici" || leafModule.startsWith("node:")
      ? "HTTP/sockets (shared pool)"
      : `unattributed ${leafModule}`)
  stageCache.set(id, result)
  return result
}
const byStage = new Map<string, number>()
for (const [id, us] of selfUs) add(byStage, stageOf(id), us)

const idle = byModule.get("(idle)") ?? 0
const busy = total - idle
const fmt = (us: number) =>
  `${(us / 1000).toFixed(1).padStart(9)} ms ${(100 * us / busy).toFixed(1).padStart(5)} %${
    per === undefined ? "" : ` ${(us / per).toFixed(1).padStart(8)} µs/unit`
  }`
const table = (title: string, map: Map<string, number>) => {
  process.stdout.write(`\n${title}\n`)
  for (const [key, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${fmt(us)}  ${key}\n`)
}

process.stdout.write(
  `${file}: ${((profile.endTime - profile.startTime) / 1e6).toFixed(2)} s profiled, busy ${(busy / 1000).toFixed(0)} ms (idle ${
    (idle / 1000).toFixed(0)
  } ms)${per === undefined ? "" : `, ${(busy / per).toFixed(1)} µs busy per unit`}; percentages of busy time\n`
)
/** Effect's internals folded into one line, for the module table's overview. */
const folded = new Map<string, number>()
for (const [module, us] of byModule) add(folded, module.startsWith("effect/") ? "effect (all)" : module, us)
table("self time by module (effect folded):", folded)
table("self time inside effect:", new Map([...byModule].filter(([m]) => m.startsWith("effect/"))))
table("time by owner (nearest src/ frame on the stack):", byOwner)
table("top functions by self time:", byFunction)
table("by stage (nearest frame of a known stage up the stack):", byStage)

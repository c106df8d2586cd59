/**
 * Reads the stage stamps of a traced run (AURORA_TRACE_LATENCY=<prefix>, see
 * src/services/health/LatencyTrace.ts and bench/chatter.ts) and prints where a mention's
 * milliseconds go: for each step between two stages, its p50 / p90 / p99 / max over the measured
 * mentions; then the slowest mentions one by one, with the GC pauses and event-loop stalls that
 * fell inside them.
 *
 *   node --import tsx bench/trace-latency.ts <prefix>
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { promptOtid } from "../src/domain/Otid.js"
import { percentile } from "./stats.js"

/** The stages in the order a mention passes them (a stage missing for a mention is skipped). */
const Stages = [
  "sent",
  "intake",
  "listen",
  "context",
  "prompt",
  "admitted",
  "journaled",
  "dispatch",
  "runStarted",
  "executor",
  "request",
  "fetch",
  "arrived"
] as const

const prefix = process.argv[2]
if (prefix === undefined) throw new Error("usage: bench/trace-latency.ts <prefix>")
const dir = Path.dirname(prefix)
const base = Path.basename(prefix)

interface Stamp {
  readonly at: number
  readonly id: string
  readonly what: string
}

const read = (file: string): Array<Stamp> =>
  Fs.readFileSync(Path.join(dir, file), "utf8").split("\n").filter((line) => line.length > 0).map((line) => {
    const [at, id, ...what] = line.split(" ")
    return { at: Number(at), id: id ?? "", what: what.join(" ") }
  })

process.stdout.on("error", () => process.exit(0))
for (const sentFile of Fs.readdirSync(dir).filter((f) => f.startsWith(`${base}-aurora-`) && f.endsWith(".sent"))) {
  const pid = sentFile.slice(`${base}-aurora-`.length, -".sent".length)
  const logFile = `${base}-${pid}.log`
  if (!Fs.existsSync(Path.join(dir, logFile))) continue
  const sent = read(sentFile)
  const log = read(logFile)
  const ids = new Set(sent.filter((s) => s.what === "sent").map((s) => s.id))
  const byOtid = new Map([...ids].map((id) => [promptOtid(id), id]))
  const stamps = new Map<string, Map<string, number>>()
  for (const s of [...sent, ...log]) {
    const id = byOtid.get(s.id) ?? s.id
    if (!ids.has(id)) continue
    const of = stamps.get(id) ?? new Map<string, number>()
    // The first stamp of a stage counts (a retried request would stamp again).
    if (!of.has(s.what)) of.set(s.what, s.at)
    stamps.set(id, of)
  }
  const pauses = log.filter((s) => s.id === "-")
  const steps = new Map<string, Array<number>>()
  const totals: Array<{ id: string; total: number; parts: Array<string> }> = []
  for (const [id, of] of stamps) {
    const present = Stages.filter((stage) => of.has(stage))
    const parts: Array<string> = []
    for (let i = 1; i < present.length; i++) {
      const from = present[i - 1]!
      const to = present[i]!
      const ms = of.get(to)! - of.get(from)!
      const key = `${from} -> ${to}`
      steps.set(key, [...(steps.get(key) ?? []), ms])
      parts.push(`${to} +${ms.toFixed(2)}`)
    }
    const first = of.get("sent")
    const last = of.get("arrived")
    if (first !== undefined && last !== undefined) totals.push({ id, total: last - first, parts })
  }
  console.log(`\nAurora child ${pid}: ${stamps.size} mentions traced`)
  console.log("| step | n | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|---|")
  const row = (key: string, values: ReadonlyArray<number>) =>
    console.log(
      `| ${key} | ${values.length} | ${percentile(values, 50).toFixed(2)} | ${percentile(values, 90).toFixed(2)} | ${
        percentile(values, 99).toFixed(2)
      } | ${Math.max(...values).toFixed(2)} |`
    )
  for (let i = 1; i < Stages.length; i++) {
    const key = `${Stages[i - 1]} -> ${Stages[i]}`
    const values = steps.get(key)
    if (values !== undefined) row(key, values)
  }
  for (const [key, values] of steps) if (!Stages.some((s, i) => i > 0 && key === `${Stages[i - 1]} -> ${s}`)) row(key, values)
  row("sent -> arrived", totals.map((t) => t.total))
  const gcs = pauses.filter((p) => p.what.startsWith("gc"))
  const gcMs = gcs.map((p) => Number(p.what.split(" ")[1]))
  const kinds = new Map<string, Array<number>>()
  for (const p of gcs) {
    const [, ms, kind] = p.what.split(" ")
    kinds.set(kind ?? "?", [...(kinds.get(kind ?? "?") ?? []), Number(ms)])
  }
  for (const [kind, values] of kinds) {
    console.log(
      `GC ${kind}: ${values.length}, p50 ${percentile(values, 50).toFixed(2)} ms, p90 ${
        percentile(values, 90).toFixed(2)
      } ms, total ${values.reduce((a, b) => a + b, 0).toFixed(0)} ms`
    )
  }
  console.log(
    `GC: ${gcs.length} pauses, p50 ${percentile(gcMs, 50).toFixed(2)} ms, max ${Math.max(0, ...gcMs).toFixed(2)} ms; ` +
      `loop stalls over 5 ms: ${pauses.filter((p) => p.what.startsWith("stall")).length}`
  )
  // Bursts (sends within 50 ms of each other): the mention whose request arrived first, stage by stage.
  const bySend = totals.map((t) => ({ ...t, sent: stamps.get(t.id)!.get("sent")! })).sort((a, b) => a.sent - b.sent)
  const bursts: Array<Array<(typeof bySend)[number]>> = []
  for (const t of bySend) {
    const last = bursts.at(-1)
    if (last !== undefined && t.sent - last[0]!.sent < 50) last.push(t)
    else bursts.push([t])
  }
  if (bursts.some((burst) => burst.length > 1)) {
    console.log("first request of each burst (from the burst's first send):")
    for (const burst of bursts) {
      const start = burst[0]!.sent
      const first = burst.reduce((a, b) => (stamps.get(a.id)!.get("arrived")! <= stamps.get(b.id)!.get("arrived")! ? a : b))
      const of = stamps.get(first.id)!
      const rel = Stages.filter((s) => of.has(s)).map((s) => `${s} ${(of.get(s)! - start).toFixed(1)}`)
      console.log(`  ${burst.length} mentions: ${rel.join(", ")}`)
    }
  }
  console.log("slowest mentions:")
  for (const t of totals.sort((a, b) => b.total - a.total).slice(0, 8)) {
    const of = stamps.get(t.id)!
    const from = of.get("sent")!
    const to = of.get("arrived")!
    const inside = pauses.filter((p) => p.at >= from - 50 && p.at <= to).map((p) => `${p.what} at +${(p.at - from).toFixed(1)}`)
    console.log(`  ${t.total.toFixed(2)} ms: ${t.parts.join(", ")}${inside.length > 0 ? `; ${inside.join(", ")}` : ""}`)
  }
}

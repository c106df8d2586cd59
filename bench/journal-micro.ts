/**
 * `node --import tsx bench/journal-micro.ts [cycles] [concurrency] [gapMs]`: what the durable
 * journal costs per event. Each cycle is what the queue and the dispatcher write for one event
 * that runs at once: append, runStarted, remove, through EventJournal.layerSql on a fresh
 * database in a temporary directory (synchronous = NORMAL).
 *
 * - `concurrency` (default 1): events in progress at once, each a fiber doing its cycles one after
 *   another; with more than one, writes requested together share a commit (group commit).
 * - `gapMs` (default 0): a pause after each cycle, as in a lightly loaded process where every
 *   write is alone and nothing is warm. Run with `JOURNAL=noop` to measure the harness alone
 *   (the pauses cost CPU too) and subtract it.
 *
 * - `RUNLOG=1`: each cycle also records the run in the runs log (RunLog.layerSql, as the
 *   dispatcher does when a run ends), so that the runs log's share of a dispatch can be told apart.
 *
 * Prints the total wall and CPU time and the cost per event; asserts nothing.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Console, Effect, Layer } from "effect"
import type { QueuedEvent } from "../src/domain/Event.js"
import { Database } from "../src/services/storage/Database.js"
import { EventJournal } from "../src/services/queue/EventJournal.js"
import { RunLog } from "../src/services/queue/RunLog.js"

const cycles = Number(process.argv[2] ?? "10000")
/** How many events are in progress at once (each a fiber doing its cycles one after another). */
const concurrency = Number(process.argv[3] ?? "1")
/** A pause (ms) after each cycle of a fiber: a lightly loaded process, where no write finds company. */
const gapMs = Number(process.argv[4] ?? "0")

const event = (i: number): QueuedEvent => ({
  messageId: `${1_300_000_000_000_000_000n + BigInt(i)}`,
  guildId: `g${i % 20}`,
  channelId: `c${i % 200}`,
  authorId: "100000000000000001",
  agentId: `agent-${i % 20}`,
  trigger: "mention",
  prompt: "a prompt of a typical size, ".repeat(20),
  enqueuedAt: 1_700_000_000_000 + i,
  attempts: 0
})

const withRunLog = process.env["RUNLOG"] === "1"

const cycle = (journal: EventJournal["Type"], runs: RunLog["Type"], i: number) =>
  Effect.gen(function*() {
    const e = event(i)
    yield* journal.append(e)
    yield* journal.runStarted(e.messageId, e.enqueuedAt)
    yield* journal.remove(e.messageId)
    if (withRunLog) {
      yield* runs.record({
        messageId: e.messageId,
        guildId: e.guildId,
        channelId: e.channelId,
        conversationId: null,
        runId: `run-${i}`,
        outcome: "answered",
        toolCalls: ["discord_send"],
        durationMs: 3,
        queuedMs: 1,
        finishedAt: e.enqueuedAt + 4,
        detail: null
      })
    }
  })

const measure = Effect.gen(function*() {
  const journal = yield* EventJournal
  const runs = yield* RunLog
  // Warm-up: statements prepared, JIT settled.
  for (let i = 0; i < 500; i++) yield* cycle(journal, runs, -1 - i)
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  yield* Effect.forEach(
    Array.from({ length: concurrency }, (_, lane) => lane),
    (lane) =>
      Effect.forEach(
        Array.from({ length: Math.ceil(cycles / concurrency) }, (_, k) => k * concurrency + lane),
        (i) => gapMs > 0 ? Effect.zipRight(cycle(journal, runs, i), Effect.sleep(gapMs)) : cycle(journal, runs, i),
        { discard: true }
      ),
    { concurrency: "unbounded", discard: true }
  )
  const wallMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const cpuMs = (cpu.user + cpu.system) / 1000
  yield* Console.log(
    `${cycles} append+runStarted+remove${
      withRunLog ? "+runs log record" : ""
    } cycles, ${concurrency} at once, ${gapMs} ms apart` +
      `${process.env["JOURNAL"] === "noop" ? " (noop journal)" : ""}: ${wallMs.toFixed(0)} ms wall, ${
        cpuMs.toFixed(0)
      } ms CPU; ` +
      `per event ${(wallMs / cycles * 1000).toFixed(1)} µs wall, ${(cpuMs / cycles * 1000).toFixed(1)} µs CPU ` +
      `(${(cpuMs / cycles / 3 * 1000).toFixed(1)} µs CPU per write); load average ${Os.loadavg()[0]?.toFixed(2)}`
  )
})

const program = Effect.acquireUseRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "aurora-journal-bench-"))),
  (dir) =>
    measure.pipe(Effect.provide(
      process.env["JOURNAL"] === "noop"
        ? Layer.merge(EventJournal.layerNoop, RunLog.layerMemory)
        : Layer.merge(EventJournal.layerSql, RunLog.layerSql).pipe(Layer.provide(Database.layer(dir)))
    )),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

Effect.runPromise(program).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})

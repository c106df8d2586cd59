/**
 * `node --import tsx bench/journal-micro.ts [cycles]`: what the durable journal costs per event.
 * Each cycle is what the queue and the dispatcher write for one event that runs at once:
 * append, runStarted, remove, each one statement and one WAL commit (synchronous = NORMAL),
 * through SqlEventJournal.layer on a fresh database in a temporary directory. Prints the total
 * wall and CPU time and the cost per event; asserts nothing.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Console, Effect, Layer } from "effect"
import type { QueuedEvent } from "../src/domain/Event.js"
import { Database } from "../src/services/Database.js"
import { EventJournal } from "../src/services/EventJournal.js"
import { SqlEventJournal } from "../src/services/SqlEventJournal.js"

const cycles = Number(process.argv[2] ?? "10000")

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

const cycle = (journal: EventJournal["Type"], i: number) =>
  Effect.gen(function*() {
    const e = event(i)
    yield* journal.append(e)
    yield* journal.runStarted(e.messageId, e.enqueuedAt)
    yield* journal.remove(e.messageId)
  })

const measure = Effect.gen(function*() {
  const journal = yield* EventJournal
  // Warm-up: statements prepared, JIT settled.
  for (let i = 0; i < 500; i++) yield* cycle(journal, -1 - i)
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < cycles; i++) yield* cycle(journal, i)
  const wallMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const cpuMs = (cpu.user + cpu.system) / 1000
  yield* Console.log(
    `${cycles} append+runStarted+remove cycles: ${wallMs.toFixed(0)} ms wall, ${cpuMs.toFixed(0)} ms CPU; ` +
      `per event ${(wallMs / cycles * 1000).toFixed(1)} µs wall, ${(cpuMs / cycles * 1000).toFixed(1)} µs CPU ` +
      `(${(wallMs / cycles / 3 * 1000).toFixed(1)} µs per statement); load average ${Os.loadavg()[0]?.toFixed(2)}`
  )
})

const program = Effect.acquireUseRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "aurora-journal-bench-"))),
  (dir) => measure.pipe(Effect.provide(SqlEventJournal.layer.pipe(Layer.provide(Database.layerAt(dir))))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

Effect.runPromise(program).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})

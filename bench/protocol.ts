/**
 * The conversation between `bench/run.ts` (which owns the loopback fakes) and the bot under test,
 * which runs in a child process so that its CPU time and RSS are its own: the fakes and the load
 * generator stay in the parent and never show up in the bot's numbers.
 */
import type { ConversationMode } from "../src/domain/Event.js"

/** Which bot a child runs. */
export type BotKind = "aurora" | "floor"

/** What a child is told at spawn (JSON in the BENCH_CHILD environment variable). */
export interface ChildConfig {
  readonly bot: BotKind
  readonly discordApiUrl: string
  readonly discordToken: string
  readonly lettaUrl: string
  readonly dataDir: string
  /** guild id -> agent id; every listed guild is enabled. */
  readonly agents: Readonly<Record<string, string>>
  /** Seconds between dispatches per channel (Aurora only). */
  readonly ratelimit?: number
  /** Pending events per guild (Aurora only). */
  readonly queuesize?: number
  /** A Letta conversation per channel or the agent's shared one, per guild (Aurora only; default channel). */
  readonly conversations?: ConversationMode
  /** Runs of one agent at once, in different conversations, per guild (Aurora only; 1–32, default 8). */
  readonly parallel?: number
}

export type ParentRequest =
  | { readonly id: number; readonly cmd: "mark" }
  | { readonly id: number; readonly cmd: "resetPeak" }
  | { readonly id: number; readonly cmd: "gc" }
  | { readonly id: number; readonly cmd: "counters" }
  | { readonly id: number; readonly cmd: "stop" }
  /** Diagnostics: a V8 heap snapshot written to `path` (outside the repository); replies with a mark taken after it. */
  | { readonly id: number; readonly cmd: "heapSnapshot"; readonly path: string }
  /** Diagnostics: the memory timeline sampled since the last resetPeak (every 250 ms). */
  | { readonly id: number; readonly cmd: "timeline" }
  /**
   * Diagnostics: start a V8 CPU profile of the measured window, or stop it and write it to `path`
   * (a .cpuprofile); replies with a mark.
   */
  | { readonly id: number; readonly cmd: "profileStart" }
  | { readonly id: number; readonly cmd: "profileStop"; readonly path: string }

/** Committed and used bytes of one V8 heap space (v8.getHeapSpaceStatistics()). */
export interface HeapSpace {
  readonly name: string
  readonly size: number
  readonly used: number
}

/** The child's memory at one moment: what of the RSS is V8 heap (committed, used) and what is not. */
export interface MemorySample {
  /** performance.now() in the child. */
  readonly at: number
  readonly rss: number
  readonly heapUsed: number
  readonly heapTotal: number
  /** Memory of C++ objects bound to JS objects (Buffers included), outside the V8 heap. */
  readonly external: number
  /** ArrayBuffers and Buffers (part of `external`). */
  readonly arrayBuffers: number
  /** Memory V8 itself allocated with malloc (compiler zones, GC bookkeeping): outside the heap, inside the RSS. */
  readonly mallocedMemory: number
  readonly spaces: ReadonlyArray<HeapSpace>
}

/** A snapshot of the child's resources. */
export interface Mark {
  /** process.cpuUsage(), microseconds. */
  readonly userUs: number
  readonly systemUs: number
  readonly rss: number
  /** Highest RSS sampled (every 20 ms) since the last resetPeak. */
  readonly peakRss: number
  readonly heapUsed: number
  /** V8 heap committed (used or not): what V8 holds of the RSS. */
  readonly heapTotal: number
  /** Outside the V8 heap: C++ memory bound to JS objects, and of it ArrayBuffers/Buffers. */
  readonly external: number
  readonly arrayBuffers: number
  /** The memory as it was when `peakRss` was sampled. */
  readonly atPeak: MemorySample
}

/** Aurora's counters from its metric registry (zero for the floor bot, which has none). */
export interface Counters {
  readonly received: number
  readonly enqueued: number
  readonly rejected: number
  readonly dispatched: number
  readonly succeeded: number
}

export type ChildMessage =
  | {
    readonly type: "ready"
    /** From the start of the bot's construction (layer build / new Client) to gateway ready. */
    readonly startToReadyMs: number
    /** From process start (node + module loading included) to ready. */
    readonly sinceProcessStartMs: number
  }
  | { readonly type: "failed"; readonly reason: string }
  | {
    readonly type: "reply"
    readonly id: number
    readonly mark?: Mark
    readonly counters?: Counters
    readonly timeline?: ReadonlyArray<MemorySample>
  }

/**
 * The conversation map's semantics, shared by both stores: the SQL store against the memory store
 * over seeded random operations (with fresh SQL stores on the same database in between, so that
 * cold caches read the table), and the touch resolution.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import type { StorageError } from "../../../src/domain/Errors.js"
import {
  ConversationStore,
  type ConversationStoreService,
  makeMemoryConversationStore,
  touchResolutionMs
} from "../../../src/services/conversation/ConversationStore.js"
import { makeSqlConversationStore } from "../../../src/services/storage/SqlConversationStore.js"
import { seededInts } from "../../fakes/seededInts.js"
import { makeTempDir } from "../../fakes/tempDir.js"
import { database, key, session } from "./harness.js"

const tempDir = makeTempDir("conversation-model")

describe("ConversationStore (memory and SQL alike)", () => {
  it.scoped("the SQL store behaves as the memory store over a mixed sequence, cold caches included", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const bound = 4 // small, so that puts prune often
      const next = seededInts(20240614) // reproducible
      const agents = ["agent-1", "agent-2"]
      const partitions = ["guild:g1", "dm"]
      type Step = { readonly kind: "reopen" } | {
        readonly kind: "op"
        readonly run: (s: ConversationStoreService) => Effect.Effect<unknown, StorageError>
      }
      const steps: Array<Step> = []
      let now = 0
      for (let i = 0; i < 500; i++) {
        // Time moves by 0 to 30 s a step: ties, and touches both inside and past the resolution.
        now += next(4) * 10_000
        const at = now
        const k = key(`c${next(3)}`, agents[next(2)], partitions[next(2)])
        const kind = next(20)
        const limit = next(4)
        if (kind === 0) {
          steps.push({ kind: "reopen" })
        } else if (kind < 6) {
          steps.push({ kind: "op", run: (s) => s.put(k, `conv-${i}`, at) })
        } else if (kind < 10) {
          steps.push({ kind: "op", run: (s) => s.touch(k, at) })
        } else if (kind < 12) {
          steps.push({ kind: "op", run: (s) => s.forget(k) })
        } else if (kind < 14) {
          steps.push({ kind: "op", run: (s) => s.forAgent(k.agentId, k.partitionKey, limit) })
        } else {
          steps.push({ kind: "op", run: (s) => s.get(k) })
        }
      }
      const everything = (s: ConversationStoreService) =>
        Effect.forEach(agents, (agentId) => Effect.forEach(partitions, (p) => s.forAgent(agentId, p, 100)))
      const run = <R>(fresh: Effect.Effect<ConversationStoreService, never, R>) =>
        Effect.gen(function*() {
          let store = yield* fresh
          const answers: Array<unknown> = []
          for (const step of steps) {
            if (step.kind === "reopen") store = yield* fresh
            else answers.push(yield* step.run(store))
          }
          return { answers, final: yield* everything(store), cold: yield* everything(yield* fresh) }
        })
      // The memory store's "reopen" keeps its state: it is the model of what the table holds.
      const memory = yield* makeMemoryConversationStore(bound)
      const expected = yield* run(Effect.succeed(memory))
      const actual = yield* database(dir, run(makeSqlConversationStore(bound)))
      // The sequence does exercise the rules: hits, misses, forgets of both kinds, pruning.
      const answers = expected.answers
      expect(answers.filter((a) => Option.isOption(a) && Option.isSome(a)).length).toBeGreaterThan(30)
      expect(answers.filter((a) => Option.isOption(a) && Option.isNone(a)).length).toBeGreaterThan(10)
      expect(answers.filter((a) => a === true).length).toBeGreaterThan(5)
      expect(answers.filter((a) => a === false).length).toBeGreaterThan(5)
      // Far more puts than the bound: each agent ends at (or, after a late forget, near) the bound.
      const perAgent = expected.final.map((pages) => pages.reduce((n, page) => n + page.total, 0))
      expect(perAgent.every((n) => n <= bound && n >= bound - 2)).toBe(true)
      expect(perAgent).toContain(bound)
      expect(actual).toEqual(expected)
      expect(actual.cold).toEqual(actual.final)
    }))

  it.scoped(`touch moves the last use only once it is ${touchResolutionMs / 1000} s old (both stores)`, () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const scenario = (store: ConversationStoreService) =>
        Effect.gen(function*() {
          yield* store.touch(key("unknown"), 500_000) // unmapped: nothing happens
          yield* store.put(key("c1"), "conv-1", 100_000)
          const lastUse = Effect.map(store.get(key("c1")), Option.map((r) => r.lastUsedAt))
          yield* store.touch(key("c1"), 100_000 + touchResolutionMs - 1)
          const inside = yield* lastUse
          yield* store.touch(key("c1"), 100_000 + touchResolutionMs)
          const at = yield* lastUse
          yield* store.touch(key("c1"), 50_000) // an earlier clock reading never moves it back
          return { inside, at, back: yield* lastUse, unknown: yield* store.get(key("unknown")) }
        })
      const expected = {
        inside: Option.some(100_000),
        at: Option.some(100_000 + touchResolutionMs),
        back: Option.some(100_000 + touchResolutionMs),
        unknown: Option.none()
      }
      expect(yield* Effect.flatMap(makeMemoryConversationStore(), scenario)).toEqual(expected)
      expect(yield* session(dir, Effect.flatMap(ConversationStore, scenario))).toEqual(expected)
      const stored = yield* session(dir, Effect.flatMap(ConversationStore, (s) => s.get(key("c1"))))
      expect(Option.map(stored, (r) => r.lastUsedAt)).toEqual(expected.at)
    }))
})

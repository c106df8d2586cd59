/**
 * The permission matrix: every registered command run by a member (no permissions), a Manage
 * Server admin and an owner (without Manage Server), checked by the bot at run time.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Ref, TestClock } from "effect"
import { commandSpecs } from "../../src/commands/Definitions.js"
import { applicationOwners } from "../../src/commands/Owners.js"
import { ownerIds } from "../../src/domain/Config.js"
import { Partition } from "../../src/domain/Event.js"
import { defaultGuildSettings } from "../../src/domain/Settings.js"
import { EventQueue } from "../../src/services/queue/EventQueue.js"
import { SettingsStore } from "../../src/services/storage/SettingsStore.js"
import { ids, replyText, type Role, withHarness } from "./harness.js"

/** Valid options for each command, so an allowed run gets past option checks. */
const validOptions: Record<string, Record<string, string | number | boolean>> = {
  enable: { agent_id: "agent-1" },
  "dm enable": { agent_id: "agent-1" },
  context: { message_id: "800000000000000001" },
  "config replydepth": { value: 3 },
  "config typing": { value: false },
  "config ratelimit": { value: 1.5 },
  "config queuesize": { value: 20 },
  "config timeout": { value: 30 },
  "config mcpguidance": { value: false },
  "config conversations": { value: "shared" },
  "config parallel": { value: 4 },
  "config fallback": { value: "off" },
  "config images": { value: false },
  "config feedback": { value: false },
  "config tools": { value: "builtin" },
  "config approvaltimeout": { value: 5 }
}

/** The design's table: every command and who may run it (written out, not derived from the code). */
const designTable: ReadonlyArray<readonly [string, "manage" | "owner"]> = [
  ["enable", "manage"],
  ["disable", "manage"],
  ["lettaurl", "owner"],
  ["context", "manage"],
  ["config replydepth", "manage"],
  ["config typing", "manage"],
  ["config ratelimit", "manage"],
  ["config queuesize", "manage"],
  ["config timeout", "manage"],
  ["config mcpguidance", "manage"],
  ["config conversations", "manage"],
  ["config parallel", "manage"],
  ["config fallback", "manage"],
  ["config images", "manage"],
  ["config feedback", "manage"],
  ["config tools", "manage"],
  ["config approvaltimeout", "manage"],
  ["config show", "manage"],
  ["queue status", "manage"],
  ["queue clear", "manage"],
  ["queue failed", "manage"],
  ["queue retry", "manage"],
  ["events status", "manage"],
  ["events pause", "manage"],
  ["events resume", "manage"],
  ["events errors", "manage"],
  ["events resetcircuit", "owner"],
  ["dm enable", "owner"],
  ["dm disable", "owner"],
  ["conversation show", "manage"],
  ["conversation reset", "manage"],
  ["runs", "manage"]
]

const denied = (text: string) =>
  text.startsWith("⛔ You need the **Manage Server**") || text.startsWith("⛔ Only Aurora's owners")

describe("command permissions", () => {
  const roles: ReadonlyArray<Role> = ["member", "admin", "owner"]
  it("the table covers every registered command", () => {
    expect(commandSpecs.map((spec) => [spec.group, spec.subcommand].filter((p) => p !== null).join(" ")).sort())
      .toEqual(designTable.map(([path]) => path).sort())
  })

  for (const [path, access] of designTable) {
    it.scoped(`${path}: member denied, admin ${access === "owner" ? "denied" : "allowed"}, owner allowed`, () =>
      withHarness((h) =>
        Effect.gen(function*() {
          const outcomes: Record<string, boolean> = {}
          for (const role of roles) {
            const reply = yield* h.run(role, path, validOptions[path] ?? {})
            expect(reply.ephemeral).toBe(true)
            outcomes[role] = denied(replyText(reply))
          }
          expect(outcomes).toEqual({ member: true, admin: access === "owner", owner: false })
          // Each denial is logged at warning level with the user's id.
          const warnings = (yield* h.logLines).filter((line) => line.message === "permission denied")
          expect(warnings.map((line) => [line.level, line.annotations["userId"]])).toEqual(
            access === "owner" ? [["WARN", ids.member], ["WARN", ids.admin]] : [["WARN", ids.member]]
          )
        })
      ))
  }

  it.scoped("the denial names what is needed", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        expect(replyText(yield* h.run("member", "config ratelimit", { value: 1 }))).toBe(
          "⛔ You need the **Manage Server** permission to use `/aurora config ratelimit`."
        )
        expect(replyText(yield* h.run("admin", "lettaurl", { url: "http://x" }))).toBe(
          "⛔ Only Aurora's owners can use `/aurora lettaurl`."
        )
      })
    ))

  it.scoped("a denied command changes nothing", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const store = yield* SettingsStore
        yield* h.run("member", "config ratelimit", { value: 5 })
        yield* h.run("member", "enable", { agent_id: "agent-1" })
        yield* h.run("admin", "dm enable", { agent_id: "agent-1" })
        yield* h.run("member", "events pause")
        const state = yield* store.guild(ids.guild)
        expect(state.settings).toEqual(defaultGuildSettings)
        expect(state.enabled).toBe(false)
        expect(state.paused).toBe(false)
        expect((yield* store.global).dmAgentId).toBeNull()
        // Denied before the agent check: Letta was never asked.
        expect(yield* Ref.get(h.agentLookups)).toEqual([])
      })
    ))

  it.scoped("Administrator implies Manage Server", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const reply = yield* h.run("member", "config replydepth", { value: 7 }, { memberPermissions: 8n })
        expect(replyText(reply)).toContain("replydepth** is now **7**")
      })
    ))

  it.scoped("scope:global on pause/resume is owner-only; the admin's guild pause still works", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const store = yield* SettingsStore
        const queue = yield* EventQueue
        const refused = yield* h.run("admin", "events pause", { scope: "global" })
        expect(replyText(refused)).toBe("⛔ Only Aurora's owners can use `/aurora events pause scope:global`.")
        expect((yield* store.global).globalPause).toBe(false)
        expect(yield* queue.isPaused("global")).toBe(false)
        expect((yield* store.guild(ids.guild)).paused).toBe(false)

        expect(replyText(yield* h.run("admin", "events pause", { scope: "guild" }))).toContain("Paused in this server")
        expect(yield* queue.isPaused(Partition.guild(ids.guild))).toBe(true)

        expect(replyText(yield* h.run("owner", "events pause", { scope: "global" }))).toContain("all servers")
        expect((yield* store.global).globalPause).toBe(true)
        expect(yield* queue.isPaused("global")).toBe(true)
        expect(replyText(yield* h.run("admin", "events resume", { scope: "global" }))).toContain("Only Aurora's owners")
        expect(yield* queue.isPaused("global")).toBe(true)
      })
    ))

  it.scoped("queue status scope:dm is owner-only", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        expect(replyText(yield* h.run("admin", "queue status", { scope: "dm" }))).toBe(
          "⛔ Only Aurora's owners can use `/aurora queue status scope:dm`."
        )
        expect(replyText(yield* h.run("owner", "queue status", { scope: "dm" }))).toContain("Direct-message queue")
        expect(replyText(yield* h.run("admin", "queue status"))).toContain("Pending: 0")
      })
    ))

  it.scoped("queue failed / queue retry scope:dm are owner-only; the guild scope is Manage Server", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        for (const path of ["queue failed", "queue retry"]) {
          expect(replyText(yield* h.run("admin", path, { scope: "dm" }))).toBe(
            `⛔ Only Aurora's owners can use \`/aurora ${path} scope:dm\`.`
          )
          expect(denied(replyText(yield* h.run("owner", path, { scope: "dm" })))).toBe(false)
          expect(denied(replyText(yield* h.run("admin", path, { scope: "guild" })))).toBe(false)
          expect(denied(replyText(yield* h.run("member", path, { scope: "guild" })))).toBe(true)
        }
      })
    ))

  it.scoped("runs scope:dm is owner-only; the guild scope is Manage Server", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        expect(replyText(yield* h.run("admin", "runs", { scope: "dm" }))).toBe(
          "⛔ Only Aurora's owners can use `/aurora runs scope:dm`."
        )
        expect(replyText(yield* h.run("owner", "runs", { scope: "dm" }))).toContain("No direct-message runs yet")
        expect(replyText(yield* h.run("admin", "runs", { scope: "guild" }))).toContain("No runs in this server yet")
        expect(denied(replyText(yield* h.run("member", "runs", { scope: "dm" })))).toBe(true)
      })
    ))

  it.scoped("the context-menu command needs Manage Server too", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const menu = { source: "menu", name: "Preview Aurora prompt", group: null, subcommand: null } as const
        const options = { message_id: "800000000000000001" }
        expect(replyText(yield* h.run("member", "context", options, menu))).toBe(
          "⛔ You need the **Manage Server** permission to use `Preview Aurora prompt`."
        )
        expect(denied(replyText(yield* h.run("admin", "context", options, menu)))).toBe(false)
      })
    ))

  it.scoped("outside a guild every command is refused, whoever runs it", () =>
    withHarness((h) =>
      Effect.gen(function*() {
        const reply = yield* h.run("owner", "events status", {}, { guildId: null, memberPermissions: null })
        expect(replyText(reply)).toBe("❌ Aurora's commands work in a server, not in direct messages.")
        const member = yield* h.run("member", "events status", {}, { guildId: null, memberPermissions: null })
        expect(denied(replyText(member))).toBe(true)
      })
    ))
})

describe("owners", () => {
  it.effect("AURORA_OWNER_IDS: comma-separated ids, blanks and non-ids (names, too short to be a Discord id) skipped", () =>
    Effect.gen(function*() {
      const raw = " 500000000000000003, 80351110224678912 ,,alice,123,"
      const ownerIdsConfig = Effect.map(ownerIds, (owners) => owners.ids)
      const ids = yield* ownerIdsConfig.pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["AURORA_OWNER_IDS", raw]])))
      )
      expect(ids).toEqual(["500000000000000003", "80351110224678912"])
      const unset = yield* ownerIdsConfig.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map())))
      expect(unset).toEqual([])
    }))

  it.effect("the application's owners are fetched once per 10 minutes; a failed fetch denies and is retried", () =>
    Effect.gen(function*() {
      const fetches = yield* Ref.make(0)
      const failing = yield* Ref.make(true)
      const isOwner = yield* applicationOwners(
        Effect.gen(function*() {
          yield* Ref.update(fetches, (n) => n + 1)
          if (yield* Ref.get(failing)) return yield* Effect.fail("503")
          return ["42"]
        })
      )
      expect(yield* isOwner("42")).toBe(false)
      yield* Ref.set(failing, false)
      expect(yield* isOwner("42")).toBe(true)
      expect(yield* isOwner("7")).toBe(false)
      expect(yield* Ref.get(fetches)).toBe(2)
      yield* TestClock.adjust(Duration.minutes(10))
      expect(yield* isOwner("42")).toBe(true)
      expect(yield* Ref.get(fetches)).toBe(3)
    }))
})

/** The registered command JSON, checked against the design's `/aurora` table. */
import { describe, expect, it } from "@effect/vitest"
import { auroraCommand, commandDefinitions, commandSpecs, previewMenuCommand } from "../../src/commands/Definitions.js"
import { SettingRules } from "../../src/domain/Settings.js"

interface OptionJson {
  readonly type: number
  readonly name: string
  readonly description: string
  readonly required?: boolean
  readonly min_value?: number
  readonly max_value?: number
  readonly min_length?: number
  readonly max_length?: number
  readonly choices?: ReadonlyArray<{ readonly name: string; readonly value: string | number }>
  readonly options?: ReadonlyArray<OptionJson>
}

// The JSON as Discord receives it: plain data, no discord.js types.
const json = JSON.parse(JSON.stringify(commandDefinitions)) as ReadonlyArray<
  { readonly name: string; readonly type: number; readonly options?: ReadonlyArray<OptionJson> } & Record<string, unknown>
>
const aurora = json.find((command) => command.name === "aurora")!
const top = aurora.options ?? []
const find = (path: string): OptionJson => {
  const [first, second] = path.split(" ")
  const head = top.find((option) => option.name === first)
  const found = second === undefined ? head : head?.options?.find((option) => option.name === second)
  if (found === undefined) throw new Error(`no ${path}`)
  return found
}

/** Discord's option types. */
const T = { sub: 1, group: 2, string: 3, integer: 4, boolean: 5, number: 10 } as const

describe("registered commands", () => {
  it("one /aurora chat command and the message context-menu command, nothing else", () => {
    expect(json.map((command) => [command.name, command.type])).toEqual([
      ["aurora", 1],
      ["Preview Aurora prompt", 3]
    ])
    expect(previewMenuCommand).not.toHaveProperty("description")
    expect(previewMenuCommand).not.toHaveProperty("options")
  })

  it("both are guild-only and hidden from members without Manage Server", () => {
    for (const command of json) {
      expect(command["default_member_permissions"]).toBe("32")
      expect(command["dm_permission"]).toBe(false)
      expect(command["contexts"]).toEqual([0])
      expect(command["integration_types"]).toEqual([0])
    }
  })

  it("has exactly the design's subcommands and groups", () => {
    const shape = top.map((option) =>
      option.type === T.group
        ? `${option.name}: ${(option.options ?? []).map((sub) => `${sub.name}(${sub.type})`).join(" ")}`
        : `${option.name}(${option.type})`
    )
    expect(shape).toEqual([
      "enable(1)",
      "disable(1)",
      "lettaurl(1)",
      "context(1)",
      "config: replydepth(1) typing(1) ratelimit(1) queuesize(1) timeout(1) mcpguidance(1) conversations(1) parallel(1) fallback(1) images(1) feedback(1) tools(1) approvaltimeout(1) show(1)",
      "queue: status(1) clear(1) failed(1) retry(1)",
      "events: status(1) pause(1) resume(1) errors(1) resetcircuit(1)",
      "dm: enable(1) disable(1)",
      "conversation: show(1) reset(1)",
      "runs(1)"
    ])
    // The handler table is the same list.
    expect(commandSpecs.map((spec) => [spec.group, spec.subcommand].filter((p) => p !== null).join(" ")).sort()).toEqual(
      top.flatMap((option) =>
        option.type === T.group ? (option.options ?? []).map((sub) => `${option.name} ${sub.name}`) : [option.name]
      ).sort()
    )
  })

  it("config options carry the domain's limits: types, min and max", () => {
    const value = (key: string) => find(`config ${key}`).options?.[0]
    expect(value("replydepth")).toMatchObject({ type: T.integer, name: "value", required: true, min_value: 1, max_value: 10 })
    expect(value("ratelimit")).toMatchObject({ type: T.number, required: true, min_value: 0.5, max_value: 10 })
    expect(value("queuesize")).toMatchObject({ type: T.integer, required: true, min_value: 10, max_value: 200 })
    expect(value("timeout")).toMatchObject({ type: T.integer, required: true, min_value: 10, max_value: 300 })
    expect(value("typing")).toMatchObject({ type: T.boolean, required: true })
    expect(value("mcpguidance")).toMatchObject({ type: T.boolean, required: true })
    expect(value("typing")).not.toHaveProperty("min_value")
    expect(value("parallel")).toMatchObject({ type: T.integer, required: true, min_value: 1, max_value: 32 })
    expect(value("conversations")).toMatchObject({
      type: T.string,
      required: true,
      choices: [{ name: "channel", value: "channel" }, { name: "shared", value: "shared" }]
    })
    // Only `conversations` has a DM scope; the other settings have their value alone.
    expect(find("config conversations").options?.[1]).toMatchObject({
      type: T.string,
      name: "scope",
      required: false,
      choices: [{ value: "guild" }, { value: "dm" }]
    })
    expect(find("config parallel").options).toHaveLength(1)
    // ... and they are SettingRules' values, not copies that could drift.
    expect(value("ratelimit")?.min_value).toBe(SettingRules.ratelimit.min)
    expect(value("queuesize")?.max_value).toBe(SettingRules.queuesize.max)
    expect(find("config show").options).toBeUndefined()
  })

  it("the other options: agent ids, url, message_id and scopes", () => {
    expect(find("enable").options).toMatchObject([{ type: T.string, name: "agent_id", required: true }])
    expect(find("dm enable").options).toMatchObject([{ type: T.string, name: "agent_id", required: true }])
    expect(find("lettaurl").options).toMatchObject([{ type: T.string, name: "url", required: false }])
    expect(find("context").options).toMatchObject([{ type: T.string, name: "message_id", required: true }])
    expect(find("events pause").options).toMatchObject([
      { type: T.string, name: "scope", required: false, choices: [{ value: "guild" }, { value: "global" }] }
    ])
    expect(find("events resume").options?.[0]?.choices?.map((c) => c.value)).toEqual(["guild", "global"])
    expect(find("queue status").options?.[0]?.choices?.map((c) => c.value)).toEqual(["guild", "dm"])
    expect(find("queue failed").options).toMatchObject([
      { type: T.string, name: "scope", required: false, choices: [{ value: "guild" }, { value: "dm" }] }
    ])
    expect(find("queue retry").options).toMatchObject([
      { type: T.string, name: "message_id", required: false, min_length: 1, max_length: 200 },
      { type: T.string, name: "scope", required: false, choices: [{ value: "guild" }, { value: "dm" }] }
    ])
    expect(find("conversation show").options).toMatchObject([
      { type: T.string, name: "scope", required: false, choices: [{ value: "guild" }, { value: "dm" }] }
    ])
    expect(find("conversation reset").options).toMatchObject([
      { type: T.string, name: "scope", required: false, choices: [{ value: "guild" }, { value: "dm" }] },
      { type: T.string, name: "channel_id", required: false, min_length: 1, max_length: 25 }
    ])
    expect(find("runs").options).toMatchObject([
      { type: T.string, name: "scope", required: false, choices: [{ value: "guild" }, { value: "dm" }] }
    ])
    for (const path of ["disable", "queue clear", "events status", "events errors", "events resetcircuit", "dm disable"]) {
      expect(find(path).options).toBeUndefined()
    }
  })

  it("names and descriptions fit Discord's limits", () => {
    const walk = (options: ReadonlyArray<OptionJson>): void => {
      for (const option of options) {
        expect(option.name).toMatch(/^[a-z0-9_-]{1,32}$/)
        expect(option.description.length).toBeGreaterThan(0)
        expect(option.description.length).toBeLessThanOrEqual(100)
        walk(option.options ?? [])
      }
    }
    walk(top)
    expect(auroraCommand.description.length).toBeLessThanOrEqual(100)
    expect(top.length).toBeLessThanOrEqual(25)
  })

  it("who may run each command matches the design's table", () => {
    const owners = commandSpecs.filter((spec) => spec.access === "owner")
      .map((spec) => [spec.group, spec.subcommand].filter((p) => p !== null).join(" "))
    expect(owners.sort()).toEqual(["dm disable", "dm enable", "events resetcircuit", "lettaurl"])
  })
})

/**
 * The silent-run rules: which tool calls are Discord actions, what a silent run is, its text, the
 * fallback's decision and how the text is split into Discord messages.
 */
import { describe, expect, it } from "@effect/vitest"
import { isDiscordAction, isSilentRun, type RunReport, runText } from "../../src/domain/AgentRun.js"
import { cutMarker, fallbackDecision, maxMessageLength, splitReply } from "../../src/domain/FallbackReply.js"

const call = (name: string) => ({ name, toolCallId: `call-${name}`, argumentsSummary: "{}" })

const run = (
  tools: ReadonlyArray<string>,
  text: ReadonlyArray<string> = [],
  stopReason = "end_turn"
): Pick<RunReport, "stopReason" | "toolCalls" | "assistantMessages"> => ({
  stopReason,
  toolCalls: tools.map(call),
  assistantMessages: text
})

describe("the Discord action rule", () => {
  it("side-effecting discord_* tools are actions; reads, memory tools and Letta's send_message are not", () => {
    for (
      const name of [
        "discord_send",
        "discord_add_reaction",
        "discord_create_thread",
        "discord_delete_message",
        "discord_new_tool"
      ]
    ) {
      expect(isDiscordAction(name), name).toBe(true)
    }
    for (
      const name of [
        "discord_read_messages",
        "discord_get_server_info",
        "discord_list_channels",
        "discord_search_messages",
        "send_message",
        "core_memory_append",
        "archival_memory_insert",
        "web_search",
        "Discord_send",
        "my_discord_send"
      ]
    ) {
      expect(isDiscordAction(name), name).toBe(false)
    }
  })

  it("a run is silent when it ended normally without a Discord action", () => {
    expect(isSilentRun(run([]))).toBe(true)
    expect(isSilentRun(run(["send_message", "core_memory_append", "discord_read_messages"]))).toBe(true)
    expect(isSilentRun(run(["tool_rule_end"], [], "tool_rule"))).toBe(true)
    expect(isSilentRun(run(["discord_read_messages", "discord_send"]))).toBe(false)
    expect(isSilentRun(run(["discord_add_reaction"]))).toBe(false)
    // A run that did not end normally failed: it is not "silent".
    expect(isSilentRun(run([], ["text"], "max_steps"))).toBe(false)
    expect(isSilentRun(run([], ["text"], "cancelled"))).toBe(false)
  })

  it("the run's text is its assistant messages joined by a blank line, trimmed", () => {
    expect(runText({ assistantMessages: [] })).toBe("")
    expect(runText({ assistantMessages: ["  ", "\n"] })).toBe("")
    expect(runText({ assistantMessages: ["  Hello.", "How are you?\n"] })).toBe("Hello.\n\nHow are you?")
  })
})

describe("the fallback's decision", () => {
  it("an agent that acted in Discord gets no fallback, whatever it wrote and whatever the setting", () => {
    expect(fallbackDecision(run(["discord_send"], ["I replied."]), "post")).toEqual({ _tag: "NotSilent" })
    expect(fallbackDecision(run(["discord_add_reaction"], ["Reacted."]), "off")).toEqual({ _tag: "NotSilent" })
  })

  it("silent with text and post: the text, split; with off: nothing; without text: nothing", () => {
    expect(fallbackDecision(run(["send_message"], ["The answer is 42."]), "post")).toEqual({
      _tag: "Post",
      messages: ["The answer is 42."],
      cut: false
    })
    expect(fallbackDecision(run([], ["The answer is 42."]), "off")).toEqual({ _tag: "Quiet", why: "off" })
    expect(fallbackDecision(run([], []), "post")).toEqual({ _tag: "Quiet", why: "no-text" })
    expect(fallbackDecision(run([], [" \n "]), "off")).toEqual({ _tag: "Quiet", why: "no-text" })
  })

  it("a failed run is not followed by a fallback", () => {
    expect(fallbackDecision(run([], ["half an answer"], "max_steps"), "post")).toEqual({ _tag: "NotSilent" })
  })
})

const lengths = (messages: ReadonlyArray<string>) => messages.map((message) => message.length)

describe("splitReply", () => {
  it("a blank text gives no message; a text within the limit one message, trimmed", () => {
    expect(splitReply("  \n ")).toEqual({ messages: [], cut: false })
    expect(splitReply("  hi  ")).toEqual({ messages: ["hi"], cut: false })
    const exact = "x".repeat(maxMessageLength)
    expect(splitReply(exact)).toEqual({ messages: [exact], cut: false })
  })

  it("cuts at the last line break within the limit, dropping the blank lines at the cut", () => {
    const first = "a".repeat(1500)
    const second = "b".repeat(900)
    expect(splitReply(`${first}\n\n  \n${second}`)).toEqual({ messages: [first, second], cut: false })
    // A line break exactly at the limit still counts: the first message is exactly 2 000 long.
    const full = "c".repeat(maxMessageLength)
    expect(splitReply(`${full}\nnext`)).toEqual({ messages: [full, "next"], cut: false })
    // A line break wins over a later space.
    const line1 = Array.from({ length: 300 }, () => "word").join(" ") // 1 499 characters
    const line2 = Array.from({ length: 200 }, () => "more").join(" ")
    expect(splitReply(`${line1}\n${line2}`)).toEqual({ messages: [line1, line2], cut: false })
    // No message starts with whitespace: the indentation at a cut goes with it.
    expect(splitReply(`${first}\n    indented ${"d".repeat(600)}`).messages[1]).toBe(`indented ${"d".repeat(600)}`)
    // A line break beyond the limit after spaces: cut at the last space, the next message starts with text.
    expect(splitReply(`${"e".repeat(1990)}${" ".repeat(20)}\nnext`)).toEqual({ messages: ["e".repeat(1990), "next"], cut: false })
  })

  it("without a line break within the limit, cuts at the last space; a single longer word is cut at the limit", () => {
    // 2 519 characters; the last space within the limit is at 1 997, and a hard cut would split "w0333".
    const words = Array.from({ length: 420 }, (_, i) => `w${String(i).padStart(4, "0")}`).join(" ")
    const { messages } = splitReply(words)
    expect(lengths(messages)).toEqual([1997, 521])
    expect(messages.join(" ")).toBe(words)
    for (const message of messages) expect(message).toMatch(/^w\d{4}( w\d{4})*$/)

    const word = "y".repeat(4500)
    expect(splitReply(word)).toEqual({ messages: ["y".repeat(2000), "y".repeat(2000), "y".repeat(500)], cut: false })
  })

  it("never cuts a surrogate pair in half", () => {
    const text = `${"z".repeat(1999)}😀${"z".repeat(10)}`
    const { messages } = splitReply(text)
    expect(lengths(messages)).toEqual([1999, 12])
    expect(messages[1]!.startsWith("😀")).toBe(true)
  })

  it("at most 3 messages: the third ends with the marker line and stays within the limit", () => {
    const paragraphs = Array.from({ length: 10 }, (_, i) => `${i}`.repeat(1500)).join("\n")
    const { messages, cut } = splitReply(paragraphs)
    expect(cut).toBe(true)
    expect(messages).toHaveLength(3)
    expect(messages[0]).toBe("0".repeat(1500))
    expect(messages[1]).toBe("1".repeat(1500))
    expect(messages[2]).toBe(`${"2".repeat(1500)}\n${cutMarker}`)
    for (const message of messages) expect(message.length).toBeLessThanOrEqual(maxMessageLength)
  })

  it("100 000 characters give exactly 3 messages, each at most 2 000, the last one marked", () => {
    for (
      const text of [
        "q".repeat(100_000),
        Array.from({ length: 20_000 }, () => "word").join(" "),
        Array.from({ length: 2_000 }, (_, i) => `line ${i} @everyone <@&123456789012345678> [link](https://example.com)`).join(
          "\n"
        )
      ]
    ) {
      const { messages, cut } = splitReply(text.slice(0, 100_000))
      expect(cut).toBe(true)
      expect(messages).toHaveLength(3)
      for (const message of messages) {
        expect(message.length).toBeLessThanOrEqual(maxMessageLength)
        expect(message.trim()).toBe(message)
      }
      expect(messages[2]!.endsWith(`\n${cutMarker}`)).toBe(true)
    }
  })

  it("a text that needs exactly 3 messages is not marked", () => {
    const text = ["a", "b", "c"].map((c) => c.repeat(2000)).join("\n")
    expect(splitReply(text)).toEqual({ messages: ["a", "b", "c"].map((c) => c.repeat(2000)), cut: false })
  })
})

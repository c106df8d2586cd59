/**
 * How `/aurora runs` reads: one embed field per run, newest first. The field's name is the outcome
 * with its emoji; its value says which message (a jump link) in which channel and when, the Letta
 * conversation and run, the tools the agent called in order, how long it ran and waited in the
 * queue, and for a failure why and what becomes of it.
 *
 * Everything that came from Letta or the agent (tool names, ids, the error detail) is untrusted:
 * inline code, cut short; ids become links or mentions only when they are plain Discord ids.
 * Discord's embed limits hold whatever the records hold: each run gets an equal share of the 6 000
 * characters of an embed (a field's value never above 1 024), and the tool list, the only part of
 * unbounded count, gets what the rest of its field leaves ("… N more" when cut).
 */
import { channelMention, messageLink, time, TimestampStyles } from "discord.js"
import { maxRecordedToolCalls, type RunOutcome, type RunRecord } from "../domain/RunRecord.js"
import { isSnowflake } from "../domain/Snowflake.js"
import { clip, code, formatAge } from "./Format.js"
import type { ReplyEmbed, ReplyField } from "./Invocation.js"

/** Of a failure's detail (the record keeps more): a tenth of the embed holds it beside the rest. */
const maxDetailShown = 120

/** Discord's limits on one embed. */
export const embedLimits = { total: 6_000, fieldValue: 1_024, fieldName: 256 } as const

export const outcomeEmoji: Record<RunOutcome, string> = {
  answered: "✅",
  "silent-posted": "💬",
  silent: "🔇",
  failed: "❌",
  "dead-lettered": "☠️",
  interrupted: "✂️",
  "awaiting-approval": "⏸️"
}

const outcomeText: Record<RunOutcome, string> = {
  answered: "answered",
  "silent-posted": "silent, text posted by Aurora",
  silent: "silent (no Discord reply)",
  failed: "failed",
  "dead-lettered": "dead-lettered",
  interrupted: "interrupted by a restart",
  "awaiting-approval": "awaiting approval"
}

/** "850 ms", "3.2 s", "2m 5s": a run's length at a glance. */
export const formatDuration = (ms: number): string =>
  ms < 1_000 ? `${Math.max(0, Math.round(ms))} ms` : ms < 60_000 ? `${(Math.floor(ms / 100) / 10).toFixed(1)} s` : formatAge(ms)

/** The message as a jump link when every part is a plain id of a guild (a DM's link opens for its member only). */
const messageRef = (run: RunRecord): string =>
  run.guildId !== null && isSnowflake(run.guildId) && isSnowflake(run.channelId) && isSnowflake(run.messageId)
    ? `[${run.messageId}](${messageLink(run.channelId, run.messageId, run.guildId)})`
    : code(run.messageId, 40)

const placeOf = (run: RunRecord): string => {
  if (run.guildId === null) return `in DM channel ${code(run.channelId, 40)}`
  return isSnowflake(run.channelId) ? `in ${channelMention(run.channelId)}` : `in ${code(run.channelId, 40)}`
}

const whereItRan = (run: RunRecord): string =>
  [
    run.conversationId === null ? "agent's default conversation" : `conversation ${code(run.conversationId, 60)}`,
    run.runId === null ? "no run id" : `run ${code(run.runId, 60)}`
  ].join(" · ")

const timings = (run: RunRecord): string =>
  [
    run.durationMs === null ? "did not run" : `ran ${formatDuration(run.durationMs)}`,
    ...(run.queuedMs === null ? [] : [`queued ${formatDuration(run.queuedMs)}`])
  ].join(" · ")

/**
 * The tool names in order, as many as fit in `room` characters; "… N more" for the rest. When the
 * record holds as many as it keeps, the run may have made more: the line says the list is the first ones.
 */
export const toolLine = (toolCalls: ReadonlyArray<string>, room: number): string => {
  if (toolCalls.length === 0) return "🔧 no tool calls"
  const head = toolCalls.length >= maxRecordedToolCalls ? `🔧 first ${toolCalls.length}:` : "🔧"
  const names = toolCalls.map((name) => code(name, 64))
  for (let shown = names.length; shown > 0; shown--) {
    const rest = names.length - shown
    const line = `${head} ${names.slice(0, shown).join(" › ")}${rest > 0 ? ` … ${rest} more` : ""}`
    if (line.length <= room) return line
  }
  const count = `${toolCalls.length}${toolCalls.length >= maxRecordedToolCalls ? "+" : ""}`
  return clip(`🔧 ${count} tool calls (names too long to show)`, Math.max(0, room))
}

/** One run as an embed field whose name and value together stay within `budget` characters. */
export const runField = (run: RunRecord, index: number, budget: number): ReplyField => {
  const name = `${index + 1}. ${outcomeEmoji[run.outcome]} ${outcomeText[run.outcome]}`
  const room = Math.min(embedLimits.fieldValue, budget - name.length)
  const fixed = [
    `${messageRef(run)} ${placeOf(run)} · ${time(new Date(run.finishedAt), TimestampStyles.RelativeTime)}`,
    whereItRan(run),
    timings(run),
    ...(run.detail === null ? [] : [`↳ ${code(run.detail, maxDetailShown)}`])
  ]
  const fixedLength = fixed.reduce((n, line) => n + line.length + 1, 0)
  const lines = [...fixed.slice(0, 2), toolLine(run.toolCalls, room - fixedLength), ...fixed.slice(2)]
  // Only a budget far below any real one could still overflow: cut whole lines, never a link or a code span.
  while (lines.length > 1 && lines.join("\n").length > room) lines.pop()
  return { name, value: clip(lines.join("\n"), room) }
}

export type RunScope = "guild" | "dm"

export const runsFooter = "Newest first, one line per message with its latest outcome; the last 100 are kept."

/** The embed for `runs`, newest first (the caller gives at most as many as Discord's 25 fields). */
export const runsEmbed = (runs: ReadonlyArray<RunRecord>, scope: RunScope): ReplyEmbed => {
  const title = scope === "dm" ? `Last ${runs.length} direct-message runs` : `Last ${runs.length} runs in this server`
  const share = Math.floor((embedLimits.total - title.length - runsFooter.length) / Math.max(1, runs.length))
  return {
    title,
    fields: runs.map((run, index) => runField(run, index, share)),
    footer: runsFooter
  }
}

/** Times in the prompt: ISO-8601 UTC with a relative time beside it (see PromptService.ts). */

const units = [
  { name: "day", ms: 86_400_000 },
  { name: "hour", ms: 3_600_000 },
  { name: "minute", ms: 60_000 },
  { name: "second", ms: 1000 }
] as const

/** "just now", "5 minutes ago", "in 2 hours", "1 day ago": the largest whole unit, floored. */
export const relativeTime = (at: number, now: number): string => {
  const diff = now - at
  const abs = Math.abs(diff)
  if (abs < 10_000) return "just now"
  const unit = units.find((u) => abs >= u.ms) ?? units[units.length - 1]!
  const n = Math.floor(abs / unit.ms)
  const phrase = `${n} ${unit.name}${n === 1 ? "" : "s"}`
  return diff > 0 ? `${phrase} ago` : `in ${phrase}`
}

/** Largest instant a JS Date can hold; beyond it toISOString throws. */
const maxDateMs = 8.64e15

export const formatTime = (at: number, now: number): string =>
  Number.isFinite(at) && Math.abs(at) <= maxDateMs
    ? `${new Date(at).toISOString()} (${relativeTime(at, now)})`
    : "unknown time"

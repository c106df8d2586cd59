/** Small text helpers for replies: ages, rates, and user-controlled text made safe for Markdown. */

/** "45s", "2m 5s", "3h 12m", "2d 4h": an age at a glance. */
export const formatAge = (ms: number): string => {
  const seconds = Math.max(0, Math.floor(ms / 1000))
  if (seconds < 60) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes}m ${seconds % 60}s`
  const hours = Math.floor(minutes / 60)
  if (hours < 24) return `${hours}h ${minutes % 60}m`
  return `${Math.floor(hours / 24)}d ${hours % 24}h`
}

/** "12.5%" */
export const formatRate = (rate: number): string => `${(Math.round(rate * 1000) / 10).toFixed(1)}%`

/**
 * Text shown inside `inline code`: backticks are replaced so the span cannot end early, and the
 * length is bounded. Used for ids, names and reasons that come from users or servers.
 */
export const code = (text: string, max = 200): string => {
  const flat = text.replace(/[\r\n]+/g, " ").replace(/`/g, "ˋ")
  return `\`${flat.length > max ? `${flat.slice(0, max - 1)}…` : flat}\``
}

/** Cuts `text` to `max` characters, marking the cut. */
export const clip = (text: string, max: number): string => text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`

export const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`

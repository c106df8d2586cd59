/**
 * Renders Effect's metric registry in the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), so `/metrics` needs no
 * exporter library: one `# HELP` (when the metric has a description) and one `# TYPE` line per
 * family, then its samples, families sorted by name and samples by labels so the output is stable.
 *
 * Mapping: counters and frequencies are `counter`s, gauges `gauge`s, histograms `histogram`s
 * (cumulative `_bucket{le=...}`, `_sum`, `_count`), summaries `summary`s (`{quantile=...}`,
 * `_sum`, `_count`).
 */
import { Effect, Metric, MetricState, Option } from "effect"
import type { MetricLabel, MetricPair } from "effect"

/** The Content-Type of the exposition. */
export const exposition004ContentType = "text/plain; version=0.0.4; charset=utf-8"

type PromType = "counter" | "gauge" | "histogram" | "summary"

interface Family {
  readonly name: string
  readonly type: PromType
  readonly help: Option.Option<string>
  /** Pre-rendered sample lines with their sort key. */
  readonly samples: Array<readonly [string, ReadonlyArray<string>]>
}

type Label = readonly [string, string]

/** Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; anything else becomes `_`. */
export const sanitizeMetricName = (name: string): string => {
  const cleaned = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[a-zA-Z_:]/.test(cleaned) ? cleaned : `_${cleaned}`
}

/** Label names: [a-zA-Z_][a-zA-Z0-9_]*. */
export const sanitizeLabelName = (name: string): string => {
  const cleaned = name.replace(/[^a-zA-Z0-9_]/g, "_")
  return /^[a-zA-Z_]/.test(cleaned) ? cleaned : `_${cleaned}`
}

/** Label values escape backslash, double quote and line feed. */
export const escapeLabelValue = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

/** HELP text escapes backslash and line feed (quotes stay as they are). */
export const escapeHelp = (text: string): string => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

/** Go's float syntax, as Prometheus parses it: +Inf, -Inf, NaN, else the shortest decimal. */
export const formatValue = (value: number | bigint): string => {
  if (typeof value === "bigint") return value.toString()
  if (Number.isNaN(value)) return "NaN"
  if (value === Number.POSITIVE_INFINITY) return "+Inf"
  if (value === Number.NEGATIVE_INFINITY) return "-Inf"
  return String(value)
}

const renderLabels = (labels: ReadonlyArray<Label>): string =>
  labels.length === 0
    ? ""
    : `{${labels.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(",")}}`

const sample = (name: string, labels: ReadonlyArray<Label>, value: number | bigint): string =>
  `${name}${renderLabels(labels)} ${formatValue(value)}`

const labelsOf = (tags: ReadonlyArray<MetricLabel.MetricLabel>): Array<Label> =>
  tags.map((tag): Label => [sanitizeLabelName(tag.key), tag.value])

/** The samples of one series, or none for a state Prometheus cannot express. */
const seriesOf = (
  name: string,
  labels: ReadonlyArray<Label>,
  state: MetricState.MetricState.Untyped
): Option.Option<readonly [PromType, ReadonlyArray<string>]> => {
  if (MetricState.isCounterState(state)) return Option.some(["counter", [sample(name, labels, state.count)]])
  if (MetricState.isGaugeState(state)) return Option.some(["gauge", [sample(name, labels, state.value)]])
  if (MetricState.isHistogramState(state)) {
    // Effect's buckets are already cumulative and end at +Inf; add +Inf if a histogram lacks it.
    const buckets = state.buckets.map(([le, count]) => sample(`${name}_bucket`, [...labels, ["le", formatValue(le)]], count))
    const last = state.buckets[state.buckets.length - 1]
    if (last === undefined || last[0] !== Number.POSITIVE_INFINITY) {
      buckets.push(sample(`${name}_bucket`, [...labels, ["le", "+Inf"]], state.count))
    }
    return Option.some([
      "histogram",
      [...buckets, sample(`${name}_sum`, labels, state.sum), sample(`${name}_count`, labels, state.count)]
    ])
  }
  if (MetricState.isSummaryState(state)) {
    const quantiles = state.quantiles.flatMap(([q, value]) =>
      Option.isSome(value) ? [sample(name, [...labels, ["quantile", formatValue(q)]], value.value)] : []
    )
    return Option.some([
      "summary",
      [...quantiles, sample(`${name}_sum`, labels, state.sum), sample(`${name}_count`, labels, state.count)]
    ])
  }
  if (MetricState.isFrequencyState(state)) {
    const lines = Array.from(state.occurrences, ([key, count]) => sample(name, [...labels, ["key", key]], count))
    return Option.some(["counter", lines.sort()])
  }
  return Option.none()
}

/** The whole exposition for these metric pairs (e.g. `Metric.snapshot`). */
export const renderPrometheus = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  for (const pair of pairs) {
    const name = sanitizeMetricName(pair.metricKey.name)
    const labels = labelsOf(pair.metricKey.tags).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    const series = seriesOf(name, labels, pair.metricState)
    if (Option.isNone(series)) continue
    const [type, lines] = series.value
    const family = families.get(name) ?? { name, type, help: pair.metricKey.description, samples: [] }
    // One name, one type: a clashing series would make the whole exposition unparsable.
    if (family.type !== type) continue
    family.samples.push([renderLabels(labels), lines])
    families.set(name, family)
  }
  const out: Array<string> = []
  for (const family of [...families.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (Option.isSome(family.help)) out.push(`# HELP ${family.name} ${escapeHelp(family.help.value)}`)
    out.push(`# TYPE ${family.name} ${family.type}`)
    const sorted = family.samples.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    for (const [, lines] of sorted) out.push(...lines)
  }
  // The format wants every line, the last included, to end with a line feed.
  return out.length === 0 ? "" : `${out.join("\n")}\n`
}

/** Every metric in the process' registry and the `readings` taken at scrape time, rendered now. */
export const exposition = (readings: ReadonlyArray<MetricPair.MetricPair.Untyped> = []): Effect.Effect<string> =>
  Effect.map(Metric.snapshot, (pairs) => renderPrometheus([...pairs, ...readings]))

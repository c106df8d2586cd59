/** The BENCHMARKS.md sections of the chatter and light-load latency scenarios (bench/chatter.ts). */
import { type ChatterResult, ReplyDepth, Shapes } from "./chatter.js"
import { fmt, mb, median } from "./stats.js"

export interface ChatterRound {
  readonly floor: ChatterResult
  readonly aurora: ChatterResult
}

const verdict = (ok: boolean) => (ok ? "met" : "**missed**")
const thousands = (n: number) => n.toLocaleString("en-US").replace(/,/g, " ")
const medianOf = (rounds: ReadonlyArray<ChatterRound>, pick: (round: ChatterRound) => number) => median(rounds.map(pick))
const spread = (values: ReadonlyArray<number>, digits: number) =>
  values.length < 2 ? "" : ` (range ${fmt(Math.min(...values), digits)}–${fmt(Math.max(...values), digits)})`

const chatterRows = (label: string, rounds: ReadonlyArray<ChatterRound>): ReadonlyArray<string> => [
  ...rounds.map((r, i) =>
    `| ${label} | ${i + 1} | ${r.aurora.messages} (${r.aurora.mentions}) | ${fmt(r.floor.cpuPerMessageMs * 1000, 1)} / ${
      fmt(r.aurora.cpuPerMessageMs * 1000, 1)
    } | ${fmt(r.aurora.cpuPerMessageMs / r.floor.cpuPerMessageMs, 2)} | ${fmt(mb(r.floor.peakRss))} / ${
      fmt(mb(r.aurora.peakRss))
    } | ${fmt(r.aurora.peakRss / r.floor.peakRss, 2)} | ${r.floor.delivered} / ${r.aurora.delivered} | ${fmt(r.floor.p50, 2)} / ${
      fmt(r.aurora.p50, 2)
    } | ${r.aurora.received} |`
  ),
  `| ${label} | median | | ${fmt(medianOf(rounds, (r) => r.floor.cpuPerMessageMs) * 1000, 1)} / ${
    fmt(medianOf(rounds, (r) => r.aurora.cpuPerMessageMs) * 1000, 1)
  } | ${fmt(medianOf(rounds, (r) => r.aurora.cpuPerMessageMs / r.floor.cpuPerMessageMs), 2)} | ${
    fmt(mb(medianOf(rounds, (r) => r.floor.peakRss)))
  } / ${fmt(mb(medianOf(rounds, (r) => r.aurora.peakRss)))} | ${
    fmt(medianOf(rounds, (r) => r.aurora.peakRss / r.floor.peakRss), 2)
  } | | | |`
]

/** The chatter section: the issue's shape (with mentions) and the ordinary messages alone. */
export const renderChatter = (
  chatter: ReadonlyArray<ChatterRound>,
  ordinary: ReadonlyArray<ChatterRound>
): ReadonlyArray<string> => {
  const shape = Shapes.chatter
  const ratios = (rounds: ReadonlyArray<ChatterRound>) => rounds.map((r) => r.aurora.cpuPerMessageMs / r.floor.cpuPerMessageMs)
  const withMentions = median(ratios(chatter))
  const alone = median(ratios(ordinary))
  const first = chatter[0]
  const chain = first === undefined
    ? []
    : [
      `Reply chains (Aurora, depth ${ReplyDepth}): the mentions' contexts read ${first.aurora.chainReads} parents per round; REST message reads seen by the fake Discord per round: ${
        chatter.map((r) => r.aurora.restMessageReads).join(", ")
      }, so discord.js' cache served ${
        chatter.map((r) => `${fmt(100 * (1 - r.aurora.restMessageReads / r.aurora.chainReads), 1)} %`).join(", ")
      } of them.`,
      ""
    ]
  return [
    `### Chatter (${
      thousands(shape.chatter)
    } ordinary messages at ${shape.perSecond}/s, 200 channels, 20 guilds/agents, with one mention per ${shape.mentionEvery} and without mentions, instant Letta; ${chatter.length} round${
      chatter.length === 1 ? "" : "s"
    }, floor then Aurora each round)`,
    "",
    "| traffic | round | messages (mentions) | CPU per message, floor / Aurora (µs) | ratio | peak RSS, floor / Aurora (MB) | ratio | mentions delivered, floor / Aurora | mention p50, floor / Aurora (ms) | Aurora's received count |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...chatterRows(`mention per ${shape.mentionEvery}`, chatter),
    ...chatterRows("ordinary only", ordinary),
    "",
    `Target: CPU per message ≤ 1.2× the floor's: with mentions ${fmt(withMentions, 2)}×${spread(ratios(chatter), 2)} ${
      verdict(withMentions <= 1.2)
    }; ordinary messages alone ${fmt(alone, 2)}×${spread(ratios(ordinary), 2)} ${verdict(alone <= 1.2)}.`,
    "",
    ...chain
  ]
}

export const renderLatency = (rounds: ReadonlyArray<ChatterRound>): ReadonlyArray<string> => {
  const shape = Shapes.latency
  const p50Ratios = rounds.map((r) => r.aurora.p50 / r.floor.p50)
  const p99Ratios = rounds.map((r) => r.aurora.p99 / r.floor.p99)
  const p50Ratio = median(p50Ratios)
  const p99Ratio = median(p99Ratios)
  const mentions = rounds[0]?.aurora.mentions ?? 0
  return [
    `### Latency at light load (${mentions} mentions amid ${
      thousands(shape.chatter)
    } ordinary messages, one per ${shape.mentionEvery}, ${shape.perSecond} messages/s: ≈ ${
      fmt(shape.perSecond / (shape.mentionEvery + 1), 0)
    } mentions/s; MESSAGE_CREATE written → Letta request received; ${rounds.length} round${
      rounds.length === 1 ? "" : "s"
    }, floor then Aurora each round)`,
    "",
    "| round | delivered, floor / Aurora | p50, floor / Aurora (ms) | p50 ratio | p99, floor / Aurora (ms) | p99 ratio | CPU per message, floor / Aurora (ms) |",
    "|---|---|---|---|---|---|---|",
    ...rounds.map((r, i) =>
      `| ${i + 1} | ${r.floor.delivered} / ${r.aurora.delivered} | ${fmt(r.floor.p50, 2)} / ${fmt(r.aurora.p50, 2)} | ${
        fmt(p50Ratios[i] ?? NaN, 2)
      } | ${fmt(r.floor.p99, 2)} / ${fmt(r.aurora.p99, 2)} | ${fmt(p99Ratios[i] ?? NaN, 2)} | ${
        fmt(r.floor.cpuPerMessageMs, 4)
      } / ${fmt(r.aurora.cpuPerMessageMs, 4)} |`
    ),
    "",
    `Targets: p50 ≤ 2× the floor's: ${fmt(p50Ratio, 2)}×${spread(p50Ratios, 2)} ${
      verdict(p50Ratio <= 2)
    }; p99 ≤ 3× the floor's: ${fmt(p99Ratio, 2)}×${spread(p99Ratios, 2)} ${verdict(p99Ratio <= 3)}.`,
    ""
  ]
}

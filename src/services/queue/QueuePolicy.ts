/**
 * Where the queue reads a partition's limits (capacity, spacing and the per-agent cap): fixed in
 * tests, the guild's settings in the live program (DMs use the defaults).
 */
import { Context, Duration, Effect, Layer } from "effect"
import type { Partition } from "../../domain/Event.js"
import { defaultGuildSettings, SettingRules } from "../../domain/Settings.js"
import { SettingsStore } from "../storage/SettingsStore.js"

export interface PartitionLimits {
  /** Maximum pending events (the ones in flight do not count). */
  readonly capacity: number
  /** Minimum time between two dispatch starts in one channel. */
  readonly spacing: Duration.Duration
  /**
   * Maximum runs of one agent at once, all its lanes together, when a lane of this partition is
   * to start (the guild's `parallel`). In `shared` mode an agent has one lane, so one run anyway.
   */
  readonly parallel: number
}

/**
 * Where the queue reads a partition's limits: the capacity on every offer, the spacing and the
 * per-agent cap whenever a channel's next start is placed, and those of every waiting channel
 * again on `limitsChanged`, so that a change applies at once.
 */
export class QueuePolicy extends Context.Tag("aurora/QueuePolicy")<
  QueuePolicy,
  { readonly limits: (partition: Partition) => Effect.Effect<PartitionLimits> }
>() {
  /**
   * The same limits for every partition. `parallel` defaults to the setting's default (8), so a
   * test layer behaves like a guild that never ran `config parallel`.
   */
  static readonly layerFixed = (limits: {
    readonly capacity: number
    readonly spacing: Duration.DurationInput
    readonly parallel?: number | undefined
  }) =>
    Layer.succeed(QueuePolicy, {
      limits: () =>
        Effect.succeed({
          capacity: limits.capacity,
          spacing: Duration.decode(limits.spacing),
          parallel: limits.parallel ?? SettingRules.parallel.default
        })
    })

  /** The queue's limits, read from each guild's settings (DMs use the defaults). */
  static readonly layerSettings = Layer.effect(
    QueuePolicy,
    Effect.gen(function*() {
      const settings = yield* SettingsStore
      return {
        limits: (partition: Partition) =>
          (partition._tag === "Dm"
            ? Effect.succeed(defaultGuildSettings)
            : Effect.map(settings.guild(partition.guildId), (guild) => guild.settings)).pipe(
              Effect.map((s) => ({ capacity: s.queuesize, spacing: Duration.seconds(s.ratelimit), parallel: s.parallel }))
            )
      }
    })
  )
}

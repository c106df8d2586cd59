/**
 * Who Aurora's owners are: AURORA_OWNER_IDS when it names anyone, else the Discord application's
 * owner (or its team). Owners may run the owner-only commands and pass every Manage Server check.
 */
import { Clock, Context, Duration, Effect, Layer, Option, Ref } from "effect"
import { AuroraConfig } from "../domain/Config.js"
import { DiscordGateway } from "../services/discord/DiscordGateway.js"

export class CommandOwners extends Context.Tag("aurora/CommandOwners")<
  CommandOwners,
  { readonly isOwner: (userId: string) => Effect.Effect<boolean> }
>() {
  /** A fixed list (tests). */
  static readonly layerFixed = (ids: ReadonlyArray<string>): Layer.Layer<CommandOwners> =>
    Layer.succeed(CommandOwners, { isOwner: (userId) => Effect.succeed(ids.includes(userId)) })

  /**
   * The ids in AURORA_OWNER_IDS; when it names none, the application's owners, read through the
   * gateway. Entries that are not user ids were skipped when the configuration was read: they
   * are logged here, once.
   */
  static readonly layerGateway: Layer.Layer<CommandOwners, never, AuroraConfig | DiscordGateway> = Layer.effect(
    CommandOwners,
    Effect.gen(function*() {
      const { ids: configured, ignored } = (yield* AuroraConfig).owners
      if (ignored.length > 0) {
        yield* Effect.logWarning("AURORA_OWNER_IDS: ignoring entries that are not Discord user ids").pipe(
          Effect.annotateLogs({ ignored: ignored.join(",") })
        )
      }
      if (configured.length > 0) {
        yield* Effect.logInfo("owners from AURORA_OWNER_IDS").pipe(Effect.annotateLogs({ owners: configured.length }))
        return { isOwner: (userId: string) => Effect.succeed(configured.includes(userId)) }
      }
      const gateway = yield* DiscordGateway
      return { isOwner: yield* applicationOwners(gateway.applicationOwnerIds) }
    })
  )
}

/** How long the application's owners are trusted before being asked again (ownership rarely changes). */
const ownersTtl = Duration.minutes(10)

/**
 * The application's owners, fetched on first use and refreshed after `ownersTtl`. A failed fetch is
 * not cached: the check denies (and logs) and the next command asks Discord again.
 */
export const applicationOwners = <E>(fetch: Effect.Effect<ReadonlyArray<string>, E>) =>
  Effect.gen(function*() {
    const cache = yield* Ref.make<Option.Option<{ readonly ids: ReadonlyArray<string>; readonly at: number }>>(
      Option.none()
    )
    const ids = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const cached = yield* Ref.get(cache)
      if (Option.isSome(cached) && now - cached.value.at < Duration.toMillis(ownersTtl)) return cached.value.ids
      const fresh = yield* fetch
      yield* Ref.set(cache, Option.some({ ids: fresh, at: now }))
      return fresh
    })
    return (userId: string): Effect.Effect<boolean> =>
      ids.pipe(
        Effect.map((owners) => owners.includes(userId)),
        Effect.catchAll((error) =>
          Effect.as(Effect.logWarning("could not read the application's owners; owner check denied", error), false)
        )
      )
  })

/**
 * The typing indicator shown while an agent works. Discord shows "typing" for 10 seconds after each
 * request, so it is refreshed every 8 seconds until `until` completes or the fiber is interrupted.
 * A failure (missing permission, a timed-out bot, a rate limit) is logged and never fails the run:
 * the first one at warning, the rest at debug, and the indicator keeps trying on schedule.
 */
import { Context, Duration, Effect, Fiber, Layer, Ref } from "effect"
import type { DiscordFailure } from "../../domain/Errors.js"
import { DiscordGateway } from "./DiscordGateway.js"

export const typingRefresh = Duration.seconds(8)

/**
 * Resumes once the event loop has run the callbacks that were ready with the one running now
 * (setImmediate runs after them), and after every microtask they queued.
 */
const endOfLoopTurn: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

export class TypingSender extends Context.Tag("aurora/TypingSender")<
  TypingSender,
  { readonly sendTyping: (channelId: string) => Effect.Effect<void, DiscordFailure> }
>() {
  /**
   * Through the gateway's REST client, each call at the end of the loop's turn: the dispatcher
   * starts typing just before it sends the Letta request, in the same turn, and the request (the
   * Letta client's and fetch's work, promise after promise) goes out first instead of sharing
   * the CPU with discord.js' REST call. Typing shows a fraction of a millisecond later.
   */
  static readonly Default: Layer.Layer<TypingSender, never, DiscordGateway> = Layer.effect(
    TypingSender,
    Effect.map(DiscordGateway, (gateway) => TypingSender.atEndOfTurn(gateway.sendTyping))
  )

  /** `send`, each call made at the end of the loop's turn. */
  static atEndOfTurn(
    send: (channelId: string) => Effect.Effect<void, DiscordFailure>
  ): Context.Tag.Service<TypingSender> {
    return { sendTyping: (channelId) => Effect.zipRight(endOfLoopTurn, send(channelId)) }
  }
}

export class TypingIndicator extends Effect.Service<TypingIndicator>()("aurora/TypingIndicator", {
  effect: Effect.gen(function*() {
    const sender = yield* TypingSender

    /**
     * Shows typing in `channelId` until `until` completes; never fails. The refresh loop is a child
     * fiber stopped once `until` is over (or with this fiber): cheaper than racing the two, which
     * matters because every dispatch shows typing.
     */
    const showUntil = <E>(channelId: string, until: Effect.Effect<void, E>): Effect.Effect<void> =>
      Effect.gen(function*() {
        const failures = yield* Ref.make(0)
        const once = sender.sendTyping(channelId).pipe(
          Effect.catchAll((error) =>
            Ref.getAndUpdate(failures, (n) => n + 1).pipe(
              Effect.flatMap((previous) =>
                (previous === 0 ? Effect.logWarning : Effect.logDebug)(
                  `typing indicator failed in channel ${channelId}: ${error._tag}`
                )
              )
            )
          )
        )
        const refreshing = yield* Effect.fork(Effect.forever(Effect.zipRight(once, Effect.sleep(typingRefresh))))
        yield* Effect.ignore(until)
        yield* Fiber.interrupt(refreshing)
      })

    return { showUntil } as const
  })
}) {}

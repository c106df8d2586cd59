/**
 * The typing indicator shown while an agent works.
 *
 * - A run that ends within `typingGrace` shows no typing at all: no Discord call is made.
 * - A run still going after the grace shows typing from then on, refreshed every 8 seconds
 *   (Discord shows "typing" for 10 seconds after each request), until `show`'s fiber is
 *   interrupted (the answer is sent, the run ends, the dispatch stops). A call still in flight
 *   then is interrupted (withdrawn).
 * - A failure (missing permission, a timed-out bot, a rate limit) is logged and never fails the
 *   run: the first one at warning, the rest at debug, and the indicator keeps trying on schedule.
 *
 * Why the grace: a typing call is a REST request through discord.js' queue, and one still in
 * flight when a fast run ends is aborted, which destroys its TCP connection. For runs that answer
 * within a blink that cost more CPU than anything else Aurora adds to a mention (BENCHMARKS.md,
 * session 7), for an indicator nobody would have seen.
 */
import { Context, Duration, Effect, Layer } from "effect"
import type { DiscordFailure } from "../../domain/Errors.js"
import { DiscordGateway } from "./DiscordGateway.js"

export const typingRefresh = Duration.seconds(8)

/** How long a run goes before it shows typing: short enough that a person waiting sees it at once. */
export const typingGrace = Duration.millis(500)

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
     * Shows typing in `channelId` from `typingGrace` on, refreshed, until the fiber running it is
     * interrupted; never fails. Meant to be forked, and the fork interrupted to stop it: one fiber
     * per run (the dispatcher forks it for every dispatch, and stops it at the agent's first
     * side-effecting call or when the run ends).
     */
    const show = (channelId: string): Effect.Effect<never> =>
      Effect.suspend(() => {
        // Only this fiber counts its failures: a plain count.
        let failures = 0
        const once = Effect.catchAll(sender.sendTyping(channelId), (error) =>
          (failures++ === 0 ? Effect.logWarning : Effect.logDebug)(
            `typing indicator failed in channel ${channelId}: ${error._tag}`
          ))
        return Effect.zipRight(Effect.sleep(typingGrace), Effect.forever(Effect.zipRight(once, Effect.sleep(typingRefresh))))
      })

    return { show } as const
  })
}) {}

/**
 * Owner alerts: when ErrorStats raises a high-error-rate alert, every owner gets one direct
 * message with the rate, the breaker state and the top error types. ErrorStats already limits
 * alerts to one per cool-down, so each alert is sent exactly once; a DM that fails is logged and
 * dropped (retrying a DM to an owner who blocked the bot would only add to the noise).
 */
import { Context, Duration, Effect, Layer, Option, Queue } from "effect"
import { AuroraConfig, type OwnerIds } from "../domain/Config.js"
import type { DiscordFailure } from "../domain/Errors.js"
import { type BreakerState, CircuitBreaker, renderBreakerState } from "../services/health/CircuitBreaker.js"
import { DiscordGateway } from "../services/discord/DiscordGateway.js"
import { type ErrorRateAlert, ErrorStats } from "../services/health/ErrorStats.js"
import * as Metrics from "../services/health/Metrics.js"

/** Where alerts go: the owners and a way to DM them; tests fake it. */
export interface OwnerMessengerShape {
  readonly owners: Effect.Effect<ReadonlyArray<string>, DiscordFailure>
  readonly sendDirectMessage: (userId: string, text: string) => Effect.Effect<void, DiscordFailure>
}

/** The owners AURORA_OWNER_IDS names; none means "the application's owners". */
export const configuredOwners = (owners: OwnerIds): Option.Option<ReadonlyArray<string>> =>
  owners.ids.length === 0 ? Option.none() : Option.some(owners.ids)

export class OwnerMessenger extends Context.Tag("aurora/OwnerMessenger")<OwnerMessenger, OwnerMessengerShape>() {
  /** Owners from AURORA_OWNER_IDS, else the Discord application's owners; DMs through the gateway. */
  static readonly Default: Layer.Layer<OwnerMessenger, never, AuroraConfig | DiscordGateway> = Layer.effect(
    OwnerMessenger,
    Effect.gen(function*() {
      const gateway = yield* DiscordGateway
      const configured = configuredOwners((yield* AuroraConfig).owners)
      return {
        // Looked up per alert, not at start: alerts are rare, and team changes apply without a restart.
        owners: Option.match(configured, {
          onNone: () => gateway.applicationOwnerIds,
          onSome: (ids) => Effect.succeed(ids)
        }),
        sendDirectMessage: gateway.sendDirectMessage
      }
    })
  )
}

const dmTimeout = Duration.seconds(30)

const percent = (rate: number): string => `${Math.round(rate * 100)}%`

const minutes = (alert: ErrorRateAlert): string => {
  const ms = Duration.toMillis(alert.window)
  return ms % 60_000 === 0 && ms > 0 ? (ms === 60_000 ? "1 minute" : `${ms / 60_000} minutes`) : Duration.format(alert.window)
}

/** The direct message for one alert, e.g. "⚠️ Aurora: high error rate, 75% (3/4) ..." */
export const alertMessage = (alert: ErrorRateAlert, breaker: BreakerState): string => {
  const types = alert.topTypes.slice(0, 3).map(([type, n]) => `${type} ×${n}`).join(", ")
  return [
    `⚠️ Aurora: high error rate, ${percent(alert.rate)} (${alert.errors}/${alert.total} operations failed) over the last ${
      minutes(alert)
    }.`,
    `Circuit breaker: ${renderBreakerState(breaker)}.`,
    `Top error types: ${types.length === 0 ? "none recorded" : types}.`,
    "Details: /aurora events errors"
  ].join("\n")
}

const notify = (messenger: OwnerMessengerShape, breaker: CircuitBreaker, alert: ErrorRateAlert) =>
  Effect.gen(function*() {
    yield* Metrics.alertRaised
    const text = alertMessage(alert, yield* breaker.state)
    const owners = yield* messenger.owners.pipe(
      Effect.tapError((error) =>
        Effect.logWarning(`error rate alert not sent: the owners could not be looked up (${error._tag})`)
      ),
      Effect.orElseSucceed((): ReadonlyArray<string> => [])
    )
    if (owners.length === 0) {
      yield* Effect.logWarning("error rate alert: no owner to notify (set AURORA_OWNER_IDS)")
      return
    }
    const results = yield* Effect.forEach(owners, (owner) =>
      messenger.sendDirectMessage(owner, text).pipe(
        // A hung request must not hold back the next alert.
        Effect.timeout(dmTimeout),
        Effect.as(true),
        // Once: a failed DM is not retried.
        Effect.catchAll((error) =>
          Effect.logWarning(`could not send the error rate alert to owner ${owner}: ${error._tag}`).pipe(
            Effect.annotateLogs({ ownerId: owner }),
            Effect.as(false)
          )
        )
      ))
    const sent = results.filter((ok) => ok).length
    yield* Effect.logInfo(`error rate alert sent to ${sent} of ${owners.length} owner(s)`).pipe(
      Effect.annotateLogs({ errorRate: alert.rate, windowOperations: alert.total })
    )
  }).pipe(
    // One bad alert must not end the subscription.
    Effect.catchAllCause((cause) => Effect.logError("error rate alert could not be handled", cause))
  )

/** Subscribes at build time (no alert raised after that is missed) and DMs each alert in a fiber. */
export const layer: Layer.Layer<never, never, ErrorStats | CircuitBreaker | OwnerMessenger> = Layer.scopedDiscard(
  Effect.gen(function*() {
    const stats = yield* ErrorStats
    const breaker = yield* CircuitBreaker
    const messenger = yield* OwnerMessenger
    const alerts = yield* stats.subscribeAlerts
    yield* Queue.take(alerts).pipe(
      Effect.flatMap((alert) => notify(messenger, breaker, alert)),
      Effect.forever,
      Effect.forkScoped
    )
  })
)

/** The alert feature on the live services. */
export const AlertsLive: Layer.Layer<never, never, ErrorStats | CircuitBreaker | DiscordGateway | AuroraConfig> = layer
  .pipe(Layer.provide(OwnerMessenger.Default))

/**
 * `aurora_messages_received_total`: every message the Discord gateway delivered, addressed to the
 * bot or not. The gateway counts each one synchronously in discord.js' callback, where most
 * messages are dropped before any Effect runs (see src/services/discord/Intake.ts), so the count is
 * a plain number rather than a counter in Effect's registry: no fiber, no registry lookup. It is
 * rendered when `/metrics` is scraped, beside the registry (`messagesReceivedReading`), so it is
 * exact at every scrape. One count per process, like the registry.
 */
import { MetricKey, MetricPair, MetricState } from "effect"

const key = MetricKey.counter("aurora_messages_received_total", {
  description: "Messages received from the Discord gateway, before the trigger rules.",
  incremental: true
})

let received = 0

/** A message arrived from the gateway. */
export const countMessageReceived = (): void => {
  received++
}

/** The count now. */
export const messagesReceived = (): number => received

/** The count as a metric sample, for the exposition. */
export const messagesReceivedReading = (): MetricPair.MetricPair.Untyped =>
  MetricPair.unsafeMake(key, MetricState.counter(received))

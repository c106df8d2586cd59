/**
 * `/aurora lettaurl [url]` (owner): shows the Letta URL in use and where it comes from, sets an
 * override (persisted, and applied to the endpoint at once so the next run uses it), or drops it
 * with `url:reset`. After a change it says whether `GET /v1/health/` answered at the URL now in use.
 * A URL from LETTA_BASE_URL is shown without credentials or query values (see ShownUrl); an
 * override cannot carry them (normaliseLettaUrl refuses them).
 */
import { Effect, Either } from "effect"
import { shownUrl } from "../domain/ShownUrl.js"
import { LettaClient, type LettaHealth, LettaEndpoint, type LettaUrl } from "../services/letta/LettaClient.js"
import { SettingsStore } from "../services/storage/SettingsStore.js"
import { code } from "./Format.js"
import { CommandRejected, type Invocation, Reply } from "./Invocation.js"
import { guildOf, optionalString } from "./Options.js"

const allowed = "an http:// or https:// URL without credentials, query or fragment (or `reset`)"

/**
 * The URL as Aurora stores it: http/https only, no user:password (it would show in replies and
 * logs), no query or fragment (the client appends API paths), trailing slashes removed so
 * `http://host:8283/` and `http://host:8283` are the same server.
 */
export const normaliseLettaUrl = (input: string): Either.Either<string, string> => {
  const text = input.trim()
  if (!URL.canParse(text)) return Either.left(`❌ \`url\` must be ${allowed}.`)
  const url = new URL(text)
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Either.left(`❌ \`url\` must use http or https (got ${code(url.protocol.replace(/:$/, ""), 20)}).`)
  }
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "") {
    return Either.left(`❌ \`url\` must be ${allowed}.`)
  }
  return Either.right(`${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`)
}

const sourceText = (source: LettaUrl["source"]): string => {
  switch (source) {
    case "override":
      return "set with `/aurora lettaurl` (persisted; wins over LETTA_BASE_URL)"
    case "env":
      return "from LETTA_BASE_URL"
    case "default":
      return "Aurora's default (LETTA_BASE_URL is not set)"
  }
}

const healthText = (health: LettaHealth): string =>
  health._tag === "Reachable"
    ? `🟢 \`GET /v1/health/\` answered: status ${code(health.status, 40)}, version ${code(health.version, 40)}.`
    : `🔴 \`GET /v1/health/\` did not answer: ${code(health.reason, 200)}. Runs will fail until the server is reachable.`

export const lettaUrl = (invocation: Invocation) =>
  Effect.gen(function*() {
    yield* guildOf(invocation)
    const requested = yield* optionalString(invocation, "url")
    const endpoint = yield* LettaEndpoint
    if (requested === null || requested.trim() === "") {
      const current = yield* endpoint.current
      return Reply.text(`Letta URL in use: ${code(shownUrl(current.url), 300)}, ${sourceText(current.source)}.`)
    }
    const store = yield* SettingsStore
    const letta = yield* LettaClient
    if (requested.trim().toLowerCase() === "reset") {
      yield* store.setLettaBaseUrl(null)
      yield* endpoint.setOverride(null)
      const current = yield* endpoint.current
      yield* Effect.logInfo("Letta URL override dropped").pipe(Effect.annotateLogs({ lettaUrl: shownUrl(current.url) }))
      const health = yield* letta.health
      return Reply.text(
        `✅ Override dropped. Letta URL in use: ${code(shownUrl(current.url), 300)}, ${sourceText(current.source)}.\n${
          healthText(health)
        }`
      )
    }
    const url = yield* Either.mapLeft(normaliseLettaUrl(requested), (message) => new CommandRejected({ message }))
    // Persisted first: if the database refuses, the running endpoint is left as it was.
    yield* store.setLettaBaseUrl(url)
    yield* endpoint.setOverride(url)
    yield* Effect.logInfo("Letta URL override set").pipe(Effect.annotateLogs({ lettaUrl: url }))
    const health = yield* letta.health
    return Reply.text(`✅ Letta URL set to ${code(url, 300)} (persisted; used from the next run).\n${healthText(health)}`)
  })

/**
 * How the Discord fake answers HTTP: a request under `/api/v10` is matched against the route
 * table (method and path pattern, the path percent-decoded so `%40original` matches `@original`),
 * checked for the bot token where the route needs it (401 otherwise; interaction callbacks and
 * webhooks carry their own token), answered, and recorded with its status. Anything else is a 404
 * recorded as an unknown route. A route's `after` runs once the response is sent, so a gateway
 * echo never reaches the client before the REST answer. A reply `heldUntil` a promise is recorded
 * at once and answered when the promise resolves (a slow or lost answer to a handled request).
 */
import type * as Http from "node:http"
import type { Journal, RecordedRequest } from "./Records.js"

export interface Reply {
  readonly status: number
  readonly body?: unknown
  /** Runs after the response is sent (e.g. the gateway echo of a posted message). */
  readonly after?: () => void
  /** The request was handled, but its response is sent only once this resolves (if the client is still there). */
  readonly heldUntil?: Promise<void>
}

export interface RouteContext {
  readonly params: ReadonlyArray<string>
  readonly query: URLSearchParams
  readonly body: unknown
}

export interface Route {
  readonly method: string
  readonly pattern: RegExp
  /** Interaction callbacks and webhooks are authenticated by their token, not the bot token. */
  readonly auth: boolean
  readonly handle: (context: RouteContext) => Reply
}

export const json = (status: number, body: unknown): Reply => ({ status, body })
export const noContent: Reply = { status: 204 }
export const discordError = (status: number, code: number, message: string): Reply => json(status, { message, code })

const prefix = "/api/v10"

/** The server's `request` listener. */
export const serve = (
  routes: ReadonlyArray<Route>,
  tokenAccepted: (token: string) => boolean,
  record: Journal<RecordedRequest>
) =>
(request: Http.IncomingMessage, response: Http.ServerResponse): void => {
  const chunks: Array<Buffer> = []
  request.on("data", (chunk: Buffer) => chunks.push(chunk))
  request.on("end", () => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1")
    const method = request.method ?? "GET"
    const rawPath = url.pathname.startsWith(`${prefix}/`) ? url.pathname.slice(prefix.length) : url.pathname
    let path: string
    try {
      path = decodeURIComponent(rawPath)
    } catch {
      path = rawPath
    }
    const text = Buffer.concat(chunks).toString("utf8")
    let body: unknown = text.length === 0 ? null : text
    if (text.length > 0 && (request.headers["content-type"] ?? "").includes("application/json")) {
      try {
        body = JSON.parse(text)
      } catch {
        body = text
      }
    }
    const matched = url.pathname.startsWith(`${prefix}/`)
      ? routes.flatMap((route) => {
        const match = route.method === method ? route.pattern.exec(path) : null
        return match === null ? [] : [{ route, params: match.slice(1) }]
      })[0]
      : undefined
    const authorization = request.headers.authorization ?? ""
    const reply: Reply = matched === undefined
      ? discordError(404, 0, "404: Not Found")
      : matched.route.auth && !tokenAccepted(authorization.replace(/^Bot /, ""))
      ? discordError(401, 0, "401: Unauthorized")
      : matched.route.handle({ params: matched.params, query: url.searchParams, body })
    record.push((index) => ({
      index,
      method,
      path,
      query: url.search,
      body,
      at: Date.now(),
      status: reply.status,
      unknownRoute: matched === undefined
    }))
    const send = () => {
      if (response.destroyed || response.writableEnded) return
      if (reply.body === undefined) {
        response.writeHead(reply.status)
        response.end()
      } else {
        response.writeHead(reply.status, { "content-type": "application/json" })
        response.end(JSON.stringify(reply.body))
      }
      reply.after?.()
    }
    if (reply.heldUntil === undefined) send()
    else void reply.heldUntil.then(send)
  })
}

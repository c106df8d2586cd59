/**
 * The Discord fake's gateway, on the HTTP server's WebSocket upgrade: HELLO on connect, heartbeat
 * ACKs, IDENTIFY (token checked: close 4004; then the shard rules of Shards.ts) answered by READY
 * and one GUILD_CREATE per guild of the shard, RESUME answered by the missed dispatches and
 * RESUMED (or INVALID_SESSION for an unknown session), and dispatches routed to their shard's
 * session. Every dispatch is sequenced and kept for RESUME; a session without a live socket keeps
 * them until the client resumes. Connects, identifies, resumes and closes are recorded.
 */
import type * as Http from "node:http"
import type { Duplex } from "node:stream"
import { type RawData, WebSocket, WebSocketServer } from "ws"
import { field, guildCreatePayload, type Json, stringField, userPayload } from "./Payloads.js"
import { type GatewayRecord, Journal } from "./Records.js"
import { identifyVerdict, type Session, shardField, ShardSessions } from "./Shards.js"
import type { DiscordState } from "./State.js"

export class Gateway {
  readonly record = new Journal<GatewayRecord>()
  private readonly wss = new WebSocketServer({ noServer: true })
  private readonly sockets = new Set<WebSocket>()
  private readonly sessions = new ShardSessions()
  private readonly state: DiscordState
  /** Known once the server listens: READY's `resume_gateway_url`. */
  private readonly url: () => string
  private identifies = 0
  private resumes = 0

  constructor(state: DiscordState, url: () => string) {
    this.state = state
    this.url = url
  }

  /** The HTTP server's `upgrade` listener. */
  upgrade(request: Http.IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(request, socket, head, (ws) => this.onSocket(ws))
  }

  get identifyCount(): number {
    return this.identifies
  }

  get resumeCount(): number {
    return this.resumes
  }

  openSockets(): number {
    return [...this.sockets].filter((socket) => socket.readyState === WebSocket.OPEN).length
  }

  closeShard(shardId: number, code: number, reason: string): void {
    this.sessions.socketOf(shardId)?.close(code, reason)
  }

  /** Every socket killed without a close frame (close 1006). */
  terminateSockets(): void {
    for (const socket of this.sockets) socket.terminate()
  }

  /** Before the HTTP server closes. */
  close(): void {
    this.terminateSockets()
    this.wss.close()
  }

  /** To the session of the event's shard (see Shards.ts); dropped before it identified. */
  dispatch(t: string, d: Json): void {
    const session = this.sessions.route(t, d)
    if (session !== undefined) this.dispatchTo(session, t, d)
  }

  private onSocket(socket: WebSocket): void {
    this.sockets.add(socket)
    this.record.push((index) => ({ index, kind: "connect", at: Date.now() }))
    socket.on("message", (data) => this.onFrame(socket, data))
    socket.on("error", () => undefined)
    socket.on("close", (code) => {
      this.sockets.delete(socket)
      this.sessions.detach(socket)
      this.record.push((index) => ({ index, kind: "close", at: Date.now(), code }))
    })
    this.sendFrame(socket, { op: 10, d: { heartbeat_interval: this.state.options.heartbeatIntervalMs ?? 41_250 } })
  }

  private onFrame(socket: WebSocket, data: RawData): void {
    let frame: unknown
    try {
      frame = JSON.parse(data.toString())
    } catch {
      socket.close(4002, "Decode error")
      return
    }
    const op = field(frame, "op")
    const d = field(frame, "d")
    switch (op) {
      case 1:
        return this.sendFrame(socket, { op: 11 })
      case 2:
        return this.identify(socket, d)
      case 6:
        return this.resume(socket, d)
      default:
        // Presence updates, guild member requests, voice: accepted and ignored.
        return
    }
  }

  private identify(socket: WebSocket, d: unknown): void {
    const asked = shardField(d)
    this.record.push((index) => ({ index, kind: "identify", at: Date.now(), ...(asked === null ? {} : { shard: asked }) }))
    if (!this.state.tokenAccepted(stringField(d, "token"))) {
      socket.close(4004, "Authentication failed")
      return
    }
    const verdict = identifyVerdict(d, this.state.guilds, this.state.options)
    if (verdict._tag === "Close") {
      socket.close(verdict.code, verdict.reason)
      return
    }
    this.identifies++
    const session = this.sessions.start(socket, verdict.shard)
    const bot = this.state.bot
    this.dispatchTo(session, "READY", {
      v: 10,
      user: { ...userPayload(bot), bot: true, verified: true, mfa_enabled: false, flags: 0 },
      guilds: verdict.guilds.map((guild) => ({ id: guild.id, unavailable: true })),
      session_id: session.id,
      resume_gateway_url: this.url(),
      shard: verdict.shard,
      application: { id: this.state.applicationId, flags: 0 },
      private_channels: [],
      relationships: [],
      presences: [],
      guild_join_requests: []
    })
    for (const guild of verdict.guilds) this.dispatchTo(session, "GUILD_CREATE", guildCreatePayload(guild, bot.id))
    this.record.push((index) => ({ index, kind: "ready", at: Date.now(), shard: verdict.shard }))
  }

  private resume(socket: WebSocket, d: unknown): void {
    const session = this.sessions.find(stringField(d, "session_id"))
    const seq = field(d, "seq")
    this.record.push((index) => ({
      index,
      kind: "resume",
      at: Date.now(),
      ...(typeof seq === "number" ? { seq } : {})
    }))
    if (session === undefined || !this.state.tokenAccepted(stringField(d, "token"))) {
      this.record.push((index) => ({ index, kind: "invalid-session", at: Date.now() }))
      this.sendFrame(socket, { op: 9, d: false })
      return
    }
    this.resumes++
    session.socket = socket
    const from = typeof seq === "number" ? seq : 0
    const missed = session.log.filter((frame) => frame.s > from)
    for (const frame of missed) this.sendFrame(socket, frame)
    this.dispatchTo(session, "RESUMED", {})
    this.record.push((index) => ({ index, kind: "resumed", at: Date.now(), replayed: missed.length }))
  }

  /** Sequenced and logged for RESUME; sent now only if the session has a live socket. */
  private dispatchTo(session: Session, t: string, d: Json): void {
    session.seq++
    const frame = { op: 0, t, s: session.seq, d }
    session.log.push(frame)
    if (session.socket !== null) this.sendFrame(session.socket, frame)
  }

  private sendFrame(socket: WebSocket, frame: Json): void {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame))
  }
}

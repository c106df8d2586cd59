/**
 * `/aurora runs [scope]`: the last `maxListedRuns` events Aurora dispatched in this server (or, for
 * owners with `scope:dm`, from direct messages), newest first, each with its latest outcome, as
 * RunLines renders them. None yet is a sentence saying so; a runs log that cannot be read is a
 * reply saying so (and a log line), never a failed interaction.
 */
import { Effect } from "effect"
import { Partition } from "../domain/Event.js"
import { RunLog } from "../services/queue/RunLog.js"
import { requireAccess } from "./Access.js"
import { Colors, CommandRejected, type Invocation, Reply } from "./Invocation.js"
import { guildOf, scopeOf } from "./Options.js"
import { runsEmbed } from "./RunLines.js"

/** Runs shown: each gets a tenth of the embed, enough for its ids, times and a dozen tool names. */
export const maxListedRuns = 10

export const runs = (invocation: Invocation) =>
  Effect.gen(function*() {
    const guildId = yield* guildOf(invocation)
    const scope = yield* scopeOf(invocation, "dm")
    if (scope === "dm") yield* requireAccess(invocation, "owner", "/aurora runs scope:dm")
    const log = yield* RunLog
    const recent = yield* log.recent(scope === "dm" ? Partition.dm : Partition.guild(guildId), maxListedRuns).pipe(
      Effect.tapError((error) => Effect.logError("could not read the runs log", error)),
      Effect.mapError(() =>
        new CommandRejected({
          message: "❌ Aurora could not read its runs log (database error). The details are in Aurora's log."
        })
      )
    )
    if (recent.length === 0) {
      return Reply.text(
        scope === "dm"
          ? "ℹ️ No direct-message runs yet. Each direct message Aurora hands to the agent is listed here with what came of it."
          : "ℹ️ No runs in this server yet. Each mention Aurora hands to the agent is listed here with what came of it."
      )
    }
    return Reply.embed({ ...runsEmbed(recent, scope), color: Colors.info })
  })

/**
 * What `EventQueue.stats` reports (`/aurora queue status`, `/healthz`, the metrics): a plain
 * function of the queue's state. Per partition: its pending and in-flight counts, its capacity, its
 * pause, the age of its oldest pending event and its channels with something pending; then the runs
 * in flight, oldest first, each with the lane it holds (its channel's conversation, or its agent's
 * shared one: at most one run per lane), and the runs in flight per agent (what the `parallel` cap
 * counts). Partitions, channels and agents are sorted by key, so a report reads the same
 * whatever order the state's maps keep. The capacities come from the QueuePolicy, which only the
 * service can read: it reads them first and passes them in.
 */
import { HashMap } from "effect"
import { type ConversationMode, Partition } from "../../../domain/Event.js"
import { Fifo } from "./Fifo.js"
import type { State } from "./QueueState.js"

export interface ChannelStats {
  readonly channelId: string
  readonly pending: number
}

export interface PartitionStats {
  readonly partition: Partition
  readonly key: string
  readonly pending: number
  readonly inFlight: number
  readonly capacity: number
  readonly paused: boolean
  /** enqueuedAt (epoch ms) of the oldest pending event; null when none is pending. */
  readonly oldestEnqueuedAt: number | null
  readonly channels: ReadonlyArray<ChannelStats>
}

export interface InFlightStats {
  readonly messageId: string
  readonly agentId: string
  readonly channelId: string
  readonly partition: string
  readonly startedAt: number
  /** `channel`: the run goes to its channel's conversation; `shared`: to the agent's default one. */
  readonly conversationMode: ConversationMode
  /**
   * The lane it holds, one run at a time: its channel's lane (`<partition key>/<channel id>`) in
   * `channel` mode, `shared:<agent id>` in `shared` mode.
   */
  readonly lane: string
}

export interface AgentStats {
  readonly agentId: string
  /** Runs in flight, all its lanes and partitions together. */
  readonly inFlight: number
}

export interface QueueStats {
  readonly partitions: ReadonlyArray<PartitionStats>
  readonly inFlight: ReadonlyArray<InFlightStats>
  /** The agents with runs in flight, by id. */
  readonly agents: ReadonlyArray<AgentStats>
  readonly rejected: { readonly full: number; readonly duplicate: number }
  readonly globalPaused: boolean
  readonly dispatchStopped: boolean
  readonly dedup: { readonly size: number; readonly maxSize: number }
}

/**
 * The report on `s`. `capacities` holds each partition's capacity by partition key (a partition
 * missing from it reports 0); `dedupMaxSize` is the dedup window's configured size.
 */
export const queueStats = (s: State, capacities: ReadonlyMap<string, number>, dedupMaxSize: number): QueueStats => {
  const partitions: Array<PartitionStats> = []
  for (const p of HashMap.values(s.partitions)) {
    const key = Partition.key(p.partition)
    const channels: Array<ChannelStats> = []
    let oldest: number | null = null
    for (const lane of HashMap.values(s.lanes)) {
      if (Partition.key(lane.partition) !== key || lane.pending.size === 0) continue
      channels.push({ channelId: lane.channelId, pending: lane.pending.size })
      // Every entry, not just the head: a channel keeps arrival (or restore) order, not age order.
      for (const entry of Fifo.toArray(lane.pending)) {
        oldest = oldest === null ? entry.event.enqueuedAt : Math.min(oldest, entry.event.enqueuedAt)
      }
    }
    let inFlight = 0
    for (const run of HashMap.values(s.running)) if (run.partition === key) inFlight++
    partitions.push({
      partition: p.partition,
      key,
      pending: p.pending,
      inFlight,
      capacity: capacities.get(key) ?? 0,
      paused: p.paused,
      oldestEnqueuedAt: oldest,
      channels: channels.sort((a, b) => a.channelId.localeCompare(b.channelId))
    })
  }
  return {
    partitions: partitions.sort((a, b) => a.key.localeCompare(b.key)),
    inFlight: Array.from(HashMap.values(s.running), (run) => ({
      messageId: run.messageId,
      agentId: run.agentId,
      channelId: run.channelId,
      partition: run.partition,
      startedAt: run.startedAt,
      conversationMode: run.conversationMode,
      lane: run.exclusionKey
    })).sort((a, b) => a.startedAt - b.startedAt || a.messageId.localeCompare(b.messageId)),
    agents: Array.from(s.agentRuns, ([agentId, inFlight]) => ({ agentId, inFlight })).sort((a, b) =>
      a.agentId.localeCompare(b.agentId)
    ),
    rejected: s.rejected,
    globalPaused: s.globalPaused,
    dispatchStopped: s.stopped,
    dedup: { size: s.dedup.order.size, maxSize: dedupMaxSize }
  }
}

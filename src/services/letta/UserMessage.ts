/**
 * The message a run sends, the same on both routes (agents and conversations): role `user`, the
 * request's `otid`, and as `content` the prompt string when there are no images, else a text part
 * (the prompt) followed by one `ImageContent` part per URL, in order:
 * `[{ type: "text", text }, { type: "image", source: { type: "url", url } }, ...]`.
 */
import type { MessageCreate } from "@letta-ai/letta-client/resources/agents/agents"
import type { ImageContent, TextContent } from "@letta-ai/letta-client/resources/agents/messages"
import type { RunRequest } from "../../domain/AgentRun.js"

export const userMessage = (request: Pick<RunRequest, "prompt" | "otid" | "images">): MessageCreate => {
  const images = request.images ?? []
  if (images.length === 0) return { role: "user", content: request.prompt, otid: request.otid }
  const text: TextContent = { type: "text", text: request.prompt }
  const parts = images.map((url): ImageContent => ({ type: "image", source: { type: "url", url } }))
  return { role: "user", content: [text, ...parts], otid: request.otid }
}

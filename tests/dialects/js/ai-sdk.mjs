// The Vercel AI SDK (`ai`): `DefaultChatTransport` posts the chat as `useChat` does and
// parses the UI message stream; `readUIMessageStream` builds the assistant message from it.
// Then, as `useChat({ resume: true })` does on load, `reconnectToStream` asks for the chat's
// active stream; the run is over, so the bridge answers 204 and the transport returns null.
import { DefaultChatTransport, readUIMessageStream } from "ai";
import { randomUUID } from "node:crypto";
import { args, report } from "./lib.mjs";

const { base, agent, message, headers } = args();
const chatId = process.env.CHAT_ID ?? `chat-${randomUUID()}`;
const api = `${base}/v1/agents/${agent}/ai-sdk/chat`;

async function assistantMessage(stream) {
  const errors = [];
  let last;
  for await (const m of readUIMessageStream({ stream, onError: (e) => errors.push(String(e.message ?? e)) })) {
    last = m;
  }
  const parts = last?.parts ?? [];
  return {
    id: last?.id,
    metadata: last?.metadata,
    text: parts.filter((p) => p.type === "text").map((p) => p.text).join(""),
    reasoning: parts.filter((p) => p.type === "reasoning").map((p) => p.text),
    tools: parts
      .filter((p) => p.type === "dynamic-tool")
      .map((p) => ({ toolCallId: p.toolCallId, toolName: p.toolName, input: p.input, output: p.output, state: p.state })),
    partTypes: parts.map((p) => p.type),
    errors,
  };
}

report(async () => {
  const transport = new DefaultChatTransport({ api, headers });
  const mode = process.env.MODE ?? "chat";
  const user = { id: "u1", role: "user", parts: [{ type: "text", text: message }] };
  if (mode === "follow") {
    // A second tab: while the first streams the run, it resumes the chat's active stream.
    const first = await transport.sendMessages({
      trigger: "submit-message", chatId, messageId: undefined, messages: [user], abortSignal: undefined,
    });
    const second = await new DefaultChatTransport({ api, headers }).reconnectToStream({ chatId });
    const [streamed, resumed] = await Promise.all([
      assistantMessage(first),
      second ? assistantMessage(second) : null,
    ]);
    return { streamed, resumed };
  }
  const stream = await transport.sendMessages({
    trigger: "submit-message", chatId, messageId: undefined, messages: [user], abortSignal: undefined,
  });
  const result = await assistantMessage(stream);
  const after = await transport.reconnectToStream({ chatId });
  return { ...result, resumeAfterEnd: after === null ? null : "stream" };
});

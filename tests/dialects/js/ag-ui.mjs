// AG-UI: `@ag-ui/client`'s HttpAgent runs the agent through the bridge (POST RunAgentInput,
// SSE back), verifying the event sequence as it applies it.
import { HttpAgent } from "@ag-ui/client";
import { randomUUID } from "node:crypto";
import { args, report } from "./lib.mjs";

const { base, agent, message, headers } = args();

report(async () => {
  const threadId = process.env.THREAD_ID ?? randomUUID();
  const runId = randomUUID();
  const client = new HttpAgent({ url: `${base}/v1/agents/${agent}/ag-ui`, headers, threadId });
  client.messages = [{ id: randomUUID(), role: "user", content: message }];
  const seen = { types: [], tools: [], results: [], reasoning: [], started: null, finished: null, runError: null };
  await client.runAgent(
    { runId },
    {
      onEvent: ({ event }) => { seen.types.push(event.type); },
      onRunStartedEvent: ({ event }) => { seen.started = { threadId: event.threadId, runId: event.runId }; },
      onToolCallEndEvent: ({ event, toolCallName, toolCallArgs }) => {
        seen.tools.push({ toolCallId: event.toolCallId, toolName: toolCallName, args: toolCallArgs });
      },
      onToolCallResultEvent: ({ event }) => { seen.results.push({ toolCallId: event.toolCallId, content: event.content }); },
      onReasoningMessageEndEvent: ({ reasoningMessageBuffer }) => { seen.reasoning.push(reasoningMessageBuffer); },
      onRunFinishedEvent: ({ event, outcome }) => { seen.finished = { threadId: event.threadId, runId: event.runId, outcome }; },
      onRunErrorEvent: ({ event }) => { seen.runError = { code: event.code, message: event.message }; },
    },
  ).catch((e) => { seen.thrown = String(e.message ?? e); });
  const assistant = client.messages.filter((m) => m.role === "assistant");
  return { ...seen, threadId, runId, text: assistant.map((m) => m.content ?? "").join("") };
});

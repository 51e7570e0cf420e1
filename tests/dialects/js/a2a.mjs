// A2A: `@a2a-js/sdk`'s ClientFactory reads the agent card, picks its JSON-RPC interface, and
// `sendMessageStream` streams one message's task.
import { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, JsonRpcTransportFactory } from "@a2a-js/sdk/client";
import { randomUUID } from "node:crypto";
import { args, report } from "./lib.mjs";

const { base, agent, message, headers } = args();
const fetchImpl = (url, init = {}) => fetch(url, { ...init, headers: { ...Object.fromEntries(new Headers(init.headers ?? {})), ...headers } });

const STATES = { 2: "working", 3: "completed", 4: "failed" };

report(async () => {
  const factory = new ClientFactory({
    ...ClientFactoryOptions.default,
    transports: [new JsonRpcTransportFactory({ fetchImpl })],
    cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
  });
  const client = await factory.createFromUrl(`${base}/v1/agents/${agent}/`);
  const card = client.agentCard;
  const contextId = process.env.CONTEXT_ID ?? "";
  const resubscribe = process.env.MODE === "resubscribe";
  let followed = null;
  const seen = { card: { name: card.name, streaming: card.capabilities?.streaming, url: card.supportedInterfaces?.[0]?.url },
    cases: [], states: [], thoughts: [], tools: [], results: [], artifact: "", final: null, taskId: null, contextId: null };
  for await (const event of client.sendMessageStream({
    message: { messageId: randomUUID(), contextId, taskId: "", role: 1, parts: [{ content: { $case: "text", value: message }, filename: "", mediaType: "" }], extensions: [], referenceTaskIds: [] },
  })) {
    const { $case, value } = event.payload;
    seen.cases.push($case);
    if ($case === "task") { seen.taskId = value.id; seen.contextId = value.contextId; }
    if ($case === "task" && resubscribe) {
      // A second client follows the running task (SubscribeToTask) while this one streams it.
      followed = (async () => {
        const cases = [];
        let artifact = "";
        for await (const e of client.resubscribeTask({ tenant: "", id: value.id })) {
          cases.push(e.payload.$case);
          if (e.payload.$case === "artifactUpdate") {
            for (const p of e.payload.value.artifact.parts) if (p.content?.$case === "text") artifact += p.content.value;
          }
        }
        return { cases, artifact };
      })();
    }
    if ($case === "statusUpdate") {
      const state = STATES[value.status.state] ?? value.status.state;
      seen.states.push(state);
      const m = value.status.message;
      const kind = m?.metadata?.kind;
      const part = m?.parts?.[0]?.content;
      if (kind === "thought") seen.thoughts.push(part.value);
      if (kind === "tool_call") seen.tools.push(part.value);
      if (kind === "tool_result") seen.results.push(part.value);
      if (state === "completed" || state === "failed") seen.final = part?.value ?? null;
    }
    if ($case === "artifactUpdate") {
      for (const p of value.artifact.parts) if (p.content?.$case === "text") seen.artifact += p.content.value;
    }
  }
  if (followed) seen.followed = await followed;
  return seen;
});

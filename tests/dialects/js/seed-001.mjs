// Seed 001's front end, as its design note describes `sendMessageStream()`: fetch() with a
// streaming response, read with a ReadableStream reader, `data:` lines parsed as JSON, and one
// callback per event type (onStart, onAgentInteraction, onComplete, onError). Only the URL is
// the bridge's (`POST /v1/agents/{agent}/chat/interactions`).
import { args, report } from "./lib.mjs";

const { base, agent, message, headers } = args();

async function sendMessageStream(url, body, { onStart, onAgentInteraction, onComplete, onError }) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const lines = buffer.split("\n");
    buffer = lines.pop();
    for (const line of lines) {
      if (!line.startsWith("data: ")) continue;
      const event = JSON.parse(line.slice(6));
      switch (event.type) {
        case "start": onStart?.(event.data); break;
        case "agent_interaction": onAgentInteraction?.(event.data); break;
        case "complete": onComplete?.(event.data); break;
        case "error": onError?.(event.data); break;
      }
    }
  }
}

report(async () => {
  const seen = { start: null, interactions: [], complete: null, error: null, unknown: 0 };
  await sendMessageStream(`${base}/v1/agents/${agent}/chat/interactions`, { message }, {
    onStart: (data) => { seen.start = data; },
    onAgentInteraction: (data) => { seen.interactions.push(data); },
    onComplete: (data) => { seen.complete = data; },
    onError: (data) => { seen.error = data; },
  });
  return seen;
});

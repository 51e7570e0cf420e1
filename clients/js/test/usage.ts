// Compiled (not run) by package.test.js: the declarations must accept this typical use and
// give these types. An error here is a wrong or missing declaration.
import { BridgeClient, BridgeError, type RunCompleted, type ThreadSummary } from "@agent-bridge/client";

const client = new BridgeClient({ baseUrl: "http://127.0.0.1:8080", token: async () => "jwt" });

async function demo(signal: AbortSignal): Promise<string> {
  const { agents } = await client.listAgents();
  const first: string = agents[0].name;
  if (agents[0].status === "unreachable") throw new Error(agents[0].reason ?? first);
  const { threads } = await client.listThreads(first);
  const titles: string[] = threads.map((t: ThreadSummary) => t.title);
  const sub = client.subscribe(first, "t-1", {
    onTextDelta: (e) => void e.delta.toUpperCase(),
    onToolCall: (e) => void JSON.stringify(e.arguments),
    onRunError: (e) => void e.code.toLowerCase(),
    onState: (state) => void (state === "reconnecting"),
  });
  await sub.opened;
  const accepted = await client.postMessage(first, "t-1", "hello");
  sub.close();
  try {
    const done: RunCompleted = await client.streamChat(first, { message: "hi", thread_id: accepted.thread_id }, {}, { signal });
    return done.final_message?.content ?? titles.join();
  } catch (e) {
    if (e instanceof BridgeError && e.retryable) return String(e.status);
    throw e;
  }
}
void demo;

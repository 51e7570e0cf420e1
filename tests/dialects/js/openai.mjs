// OpenAI: the `openai` package's chat.completions.create, streamed and not. Thoughts arrive as
// `delta.reasoning_content`, tool activity as the chunks' `agent_bridge` extension.
import OpenAI from "openai";
import { args, report } from "./lib.mjs";

const { base, agent, message, token } = args();

report(async () => {
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: token ?? "unused" });
  const messages = [{ role: "user", content: message }];
  const stream = await client.chat.completions.create({ model: agent, messages, stream: true, stream_options: { include_usage: true } });
  const streamed = { text: "", reasoning: [], activity: [], finish: null, usage: null, ids: new Set(), models: new Set() };
  try {
    for await (const chunk of stream) {
      streamed.ids.add(chunk.id);
      streamed.models.add(chunk.model);
      if (chunk.usage) streamed.usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      if (choice.delta?.content) streamed.text += choice.delta.content;
      if (choice.delta?.reasoning_content) streamed.reasoning.push(choice.delta.reasoning_content);
      if (chunk.agent_bridge?.type?.startsWith("tool_")) streamed.activity.push(chunk.agent_bridge);
      if (choice.finish_reason) streamed.finish = choice.finish_reason;
    }
  } catch (e) {
    streamed.error = { name: e.constructor.name, message: String(e.message) };
  }
  streamed.ids = [...streamed.ids];
  streamed.models = [...streamed.models];
  if (process.env.MODE === "stream-only") return { streamed };
  const completion = await client.chat.completions.create({ model: agent, messages });
  return {
    streamed,
    completion: {
      object: completion.object,
      model: completion.model,
      text: completion.choices[0].message.content,
      reasoning: completion.choices[0].message.reasoning_content,
      activity: completion.choices[0].agent_bridge?.activity,
      finish: completion.choices[0].finish_reason,
      usage: completion.usage,
    },
  };
});

// The SSE parser on byte streams cut at awkward places, as networks cut them.
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoff, parseEventStream } from "../src/index.js";

function body(...chunks) {
  const bytes = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(bytes.encode(chunk));
      controller.close();
    },
  });
}

async function frames(...chunks) {
  const out = [];
  for await (const frame of parseEventStream(body(...chunks))) out.push(frame);
  return out;
}

test("events, ids, multi-line data, comments and retry hints", async () => {
  assert.deepEqual(
    await frames("retry: 2000\n\n: heartbeat\n\nid: 1\nevent: thought\ndata: {\"a\":\ndata: 1}\n\n"),
    [{ retry: 2000 }, { id: "1", event: "thought", data: "{\"a\":\n1}" }],
  );
});

test("CRLF split across chunks is one line end", async () => {
  assert.deepEqual(await frames("id: 7\r", "\ndata: x\r\n\r", "\n"), [{ id: "7", event: "message", data: "x" }]);
});

test("the last id carries over, an event without data is not dispatched, a torn event is dropped", async () => {
  assert.deepEqual(
    await frames("id: 3\ndata: a\n\nevent: x\n\ndata: b\n\ndata: torn"),
    [{ id: "3", event: "message", data: "a" }, { id: "3", event: "message", data: "b" }],
  );
});

test("backoff grows from the hint and stays under its cap", () => {
  for (let attempt = 1; attempt <= 10; attempt++) {
    const wait = backoff(1000, attempt, 8000);
    const base = Math.min(8000, 1000 * 2 ** (attempt - 1));
    assert.ok(wait >= base * 0.8 && wait <= base * 1.2, `${attempt}: ${wait}`);
  }
});

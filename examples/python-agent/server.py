"""A Python agent on the bridge's `agent.v1` contract (proto/agent/v1/agent.proto).

It answers every message with a small, real multi-step run: it thinks, calls a tool (a word
count of the user's message), reads the result, streams its answer token by token, then
completes. It shows everything an agent behind the bridge must do:

- stream `ChatEvent`s numbered 1..n (`run_started` first, `run_completed` or `run_error` last);
- stop promptly when the call is cancelled (the browser left) and say so;
- scope threads by the caller's identity (`x-tenant` / `x-subject` metadata);
- serve `grpc.health.v1` so the bridge's readiness probe sees it.

Run it (the code for `agent.v1` is generated from proto/ at start-up into ./_generated/):

    python examples/python-agent/server.py --port 50061

Triggers, for trying failures: a message containing `fail` aborts the run after its first
steps with gRPC status ABORTED; `slow` makes the tool take a minute (time to leave).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import pathlib
import sys
import time
import uuid
from dataclasses import dataclass, field

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
GENERATED = HERE / "_generated"


def generate() -> None:
    """Generates the `agent.v1` Python code from the contract, once per proto change. A lock
    file serialises agents starting together, so none imports a half-written module."""
    import fcntl

    import grpc_tools
    from grpc_tools import protoc

    source = PROTO_ROOT / "agent" / "v1" / "agent.proto"
    GENERATED.mkdir(exist_ok=True)
    stamp = GENERATED / ".stamp"
    with open(GENERATED / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.stat().st_mtime >= source.stat().st_mtime:
            return
        well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"-I{well_known}",
                f"--python_out={GENERATED}",
                f"--grpc_python_out={GENERATED}",
                str(source),
            ]
        )
        if code != 0:
            raise SystemExit(f"protoc failed on {source} ({code})")
        stamp.touch()


generate()
sys.path.insert(0, str(GENERATED))

import grpc  # noqa: E402
from google.protobuf.timestamp_pb2 import Timestamp  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402

from agent.v1 import agent_pb2 as pb  # noqa: E402
from agent.v1 import agent_pb2_grpc as pb_grpc  # noqa: E402

log = logging.getLogger("python-agent")

MEMBER = "Assistant"


@dataclass
class Thread:
    thread_id: str
    title: str
    created_at: float
    updated_at: float
    messages: list[pb.ThreadMessage] = field(default_factory=list)


def owner_of(context: grpc.aio.ServicerContext) -> tuple[str, str]:
    """The end user the bridge authenticated: `(tenant, subject)`; empty when anonymous."""
    metadata = dict(context.invocation_metadata() or ())
    return metadata.get("x-tenant", ""), metadata.get("x-subject", "")


def now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


def stamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


class Agent(pb_grpc.AgentServicer):
    def __init__(self) -> None:
        # Threads per owner: one user never sees another's (the bridge passes who is asking).
        self.threads: dict[tuple[str, str], dict[str, Thread]] = {}
        self.cancelled_runs = 0

    async def Chat(self, request: pb.ChatRequest, context: grpc.aio.ServicerContext):
        owner = owner_of(context)
        run_id = request.run_id or str(uuid.uuid4())
        threads = self.threads.setdefault(owner, {})
        thread_id = request.thread_id or str(uuid.uuid4())
        thread = threads.get(thread_id)
        if thread is None:
            thread = Thread(thread_id, request.message[:80], time.time(), time.time())
            threads[thread_id] = thread
        sequence = 0

        def event(**payload) -> pb.ChatEvent:
            nonlocal sequence
            sequence += 1
            return pb.ChatEvent(
                run_id=run_id,
                thread_id=thread_id,
                agent=MEMBER,
                sequence=sequence,
                timestamp=now(),
                **payload,
            )

        user_id = f"{run_id}:user"
        thread.messages.append(
            pb.ThreadMessage(
                message_id=user_id,
                role="user",
                content=request.message,
                run_id=run_id,
                created_at=now(),
            )
        )
        log.info("run %s started for tenant=%r subject=%r", run_id, owner[0], owner[1])

        try:
            yield event(run_started=pb.RunStarted(user_message_id=user_id))
            yield event(thought=pb.Thought(content="I will count the words of the message."))
            call_id = f"{run_id}:call-1"
            arguments = '{"text": %s}' % _json_string(request.message)
            yield event(
                tool_call=pb.ToolCall(
                    call_id=call_id, tool_name="word_count", arguments_json=arguments
                )
            )
            words = len(request.message.split())
            if "slow" in request.message:
                # A slow tool: the run waits here, where a cancellation stops it.
                await asyncio.sleep(60)
            yield event(
                tool_result=pb.ToolResult(
                    call_id=call_id, tool_name="word_count", content=str(words)
                )
            )
            if "fail" in request.message:
                log.info("run %s fails on request", run_id)
                await context.abort(grpc.StatusCode.ABORTED, "the agent failed on purpose")
            answer = f"Your message has {words} word{'s' if words != 1 else ''}."
            message_id = f"{run_id}:answer"
            for token in _tokens(answer):
                yield event(text_delta=pb.TextDelta(message_id=message_id, delta=token))
            final = pb.Message(message_id=message_id, role="assistant", content=answer)
            yield event(message=final)
            thread.messages.append(
                pb.ThreadMessage(
                    message_id=message_id,
                    role="assistant",
                    content=answer,
                    agent=MEMBER,
                    run_id=run_id,
                    created_at=now(),
                )
            )
            thread.updated_at = time.time()
            yield event(
                run_completed=pb.RunCompleted(
                    final_message=final,
                    usage=pb.Usage(input_tokens=words, output_tokens=len(answer.split()), tool_calls=1),
                )
            )
            log.info("run %s completed", run_id)
        except (asyncio.CancelledError, GeneratorExit):
            # The caller cancelled the call (the browser left). grpc.aio cancels this
            # coroutine, raising `CancelledError` at its current `await` (the slow tool
            # here), or, when the cancellation met an event being sent, closes the generator
            # at its `yield` (`GeneratorExit`). Either way: stop the work, and say so.
            self.cancelled_runs += 1
            log.info("run %s cancelled by the caller (cancelled runs: %d)", run_id, self.cancelled_runs)
            raise

    async def ListThreads(self, request, context):
        threads = sorted(
            self.threads.get(owner_of(context), {}).values(),
            key=lambda t: t.updated_at,
            reverse=True,
        )
        return pb.ListThreadsResponse(
            threads=[
                pb.Thread(
                    thread_id=t.thread_id,
                    title=t.title,
                    created_at=stamp(t.created_at),
                    updated_at=stamp(t.updated_at),
                    message_count=len(t.messages),
                )
                for t in threads
            ]
        )

    async def ListMessages(self, request, context):
        thread = self.threads.get(owner_of(context), {}).get(request.thread_id)
        if thread is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such thread")
        return pb.ListMessagesResponse(messages=thread.messages)

    async def DeleteThread(self, request, context):
        thread = self.threads.get(owner_of(context), {}).pop(request.thread_id, None)
        if thread is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such thread")
        return pb.DeleteThreadResponse(deleted_messages=len(thread.messages))


def _tokens(text: str) -> list[str]:
    """Words with their following space: how a model streams an answer."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


def _json_string(text: str) -> str:
    import json

    return json.dumps(text)


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_AgentServicer_to_server(Agent(), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    # One line a supervisor (or a test) can wait for: the port actually bound.
    print(f"listening on {host}:{bound}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50061, help="0 picks a free port")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""A scripted A2A agent, served by the official A2A Python SDK (`a2a-sdk`) over its gRPC
binding (`lf.a2a.v1.A2AService`), for the bridge's agents suite.

The agent logic is an `AgentExecutor`; the SDK's `DefaultRequestHandler` and `GrpcHandler`
do the protocol (task store, streaming, cancellation). Each message becomes a task that:

- goes `working` with a progress message ("Reading the question"),
- streams its answer as chunks of one artifact (`append`, `last_chunk`), then `completed`;
- with `fail` in the message: `failed` with a status message, after the first chunk;
- with `input` in the message: `input-required`, asking a question; the next message in
  the same context (with the task's id) resumes that task, which then answers;
- with `slow` in the message: a minute between chunks, so a test can leave mid-task.

`CancelTask` is honoured: the SDK cancels `execute` and calls `cancel`, which logs
`cancelled task <id> (cancelled tasks: <n>)` on stdout for the test to read.

Usage: python a2a_agent.py --port 0 [--tls-cert PEM --tls-key PEM]
(prints `listening on 127.0.0.1:<port>` when ready)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from a2a.auth.user import UnauthenticatedUser, User
from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import (
    DefaultGrpcServerCallContextBuilder,
    DefaultRequestHandler,
    GrpcHandler,
)
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import a2a_pb2, a2a_pb2_grpc

log = logging.getLogger("a2a-agent")

ANSWER = ["The answer ", "is ", "forty-two."]


class BridgeUser(User):
    """The end user the bridge authenticated (`x-tenant` / `x-subject` metadata)."""

    def __init__(self, tenant: str, subject: str) -> None:
        self.tenant, self.subject = tenant, subject

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return f"{self.tenant}/{self.subject}"


class BridgeIdentity(DefaultGrpcServerCallContextBuilder):
    """The SDK's hook for who is calling: the task store then keeps each user's tasks (and so
    their threads) apart."""

    def build_user(self, context: grpc.aio.ServicerContext) -> User:
        metadata = dict(context.invocation_metadata() or ())
        subject = metadata.get("x-subject", "")
        if not subject:
            return UnauthenticatedUser()
        return BridgeUser(metadata.get("x-tenant", ""), subject)


class ScriptedExecutor(AgentExecutor):
    def __init__(self) -> None:
        self.cancelled = 0

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        resumed = context.current_task is not None
        if not resumed:
            await event_queue.enqueue_event(new_task_from_user_message(context.message))
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        verb = "resumed" if resumed else "started"
        user = context.call_context.user.user_name
        log.info("task %s %s in context %s for %r", context.task_id, verb, context.context_id, user)
        await updater.start_work(updater.new_agent_message([new_text_part("Reading the question")]))
        if "input" in text and not resumed:
            await updater.requires_input(updater.new_agent_message([new_text_part("Which city?")]))
            return
        for i, chunk in enumerate(ANSWER):
            if i > 0 and "slow" in text:
                await asyncio.sleep(60)
            await updater.add_artifact(
                [new_text_part(chunk)],
                artifact_id="answer",
                name="answer",
                append=i > 0,
                last_chunk=i == len(ANSWER) - 1,
            )
            if "fail" in text:
                await updater.failed(
                    updater.new_agent_message([new_text_part("The knowledge base is unreachable.")])
                )
                return
        await updater.complete()
        log.info("task %s completed", context.task_id)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        self.cancelled += 1
        print(f"cancelled task {context.task_id} (cancelled tasks: {self.cancelled})", flush=True)
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.cancel()


def card(port: int) -> a2a_pb2.AgentCard:
    return a2a_pb2.AgentCard(
        name="Scripted Researcher",
        description="Answers every question with forty-two, one chunk at a time.",
        version="1.0.0",
        supported_interfaces=[
            a2a_pb2.AgentInterface(
                url=f"127.0.0.1:{port}", protocol_binding="GRPC", protocol_version="1.0"
            )
        ],
        capabilities=a2a_pb2.AgentCapabilities(streaming=True, extended_agent_card=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            a2a_pb2.AgentSkill(
                id="answer",
                name="Answer",
                description="Answers a question.",
                tags=["qa"],
            )
        ],
    )


async def serve(host: str, port: int, tls: tuple[bytes, bytes] | None) -> None:
    server = grpc.aio.server()
    if tls is None:
        bound = server.add_insecure_port(f"{host}:{port}")
    else:
        key, cert = tls
        bound = server.add_secure_port(f"{host}:{port}", grpc.ssl_server_credentials([(key, cert)]))
    agent_card = card(bound)
    handler = DefaultRequestHandler(
        agent_executor=ScriptedExecutor(),
        task_store=InMemoryTaskStore(),
        agent_card=agent_card,
        extended_agent_card=agent_card,
    )
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler, BridgeIdentity()), server)
    # The bridge's readiness probe asks grpc.health.v1.
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    print(f"listening on {host}:{bound}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description="A scripted A2A agent (a2a-sdk, gRPC)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-cert", help="PEM certificate: serve over TLS")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = parser.parse_args()
    tls = None
    if args.tls_cert:
        with open(args.tls_key, "rb") as key, open(args.tls_cert, "rb") as cert:
            tls = (key.read(), cert.read())
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.host, args.port, tls))


if __name__ == "__main__":
    main()

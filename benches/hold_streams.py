"""Holds N idle SSE streams open on a bridge over HTTP/1.1, for heap snapshots (massif.sh).

python3 benches/hold_streams.py N PORT PID TAG [sub|run]

sub: `GET /v1/agents/bench/threads/t{i}/events`, a thread subscription each;
run: `POST /v1/agents/bench/chat` with `stub: hang`, a run waiting on its agent each.
Takes massif snapshots of process PID (valgrind's `vgdb`) before, with the streams open, and
20 s after they closed: /tmp/ms.TAG.idle, /tmp/ms.TAG.open, /tmp/ms.TAG.closed.
Standard library only.
"""

import asyncio
import subprocess
import sys

N, PORT, PID, TAG = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
MODE = sys.argv[5] if len(sys.argv) > 5 else "sub"


def snapshot(name):
    subprocess.run(
        ["vgdb", f"--pid={PID}", "detailed_snapshot", f"/tmp/ms.{TAG}.{name}"],
        check=True,
        capture_output=True,
        timeout=300,
    )


async def open_stream(i):
    reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
    if MODE == "run":
        body = b'{"message":"stub: hang"}'
        head = (
            "POST /v1/agents/bench/chat HTTP/1.1\r\nhost: bridge\r\n"
            "accept: text/event-stream\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
    else:
        writer.write(
            f"GET /v1/agents/bench/threads/t{i}/events HTTP/1.1\r\nhost: bridge\r\n"
            "accept: text/event-stream\r\n\r\n".encode()
        )
    await writer.drain()
    status = await reader.readline()
    assert b" 200 " in status, status
    return writer


async def main():
    await asyncio.sleep(3)
    snapshot("idle")
    writers = []
    for start in range(0, N, 200):
        batch = range(start, min(N, start + 200))
        writers += await asyncio.gather(*(open_stream(i) for i in batch))
    await asyncio.sleep(5)
    snapshot("open")
    for writer in writers:
        writer.close()
    await asyncio.sleep(20)
    snapshot("closed")


asyncio.run(main())

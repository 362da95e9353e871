"""A stand-in model server that answers every request at once with the same small JSON.

Used by the backend benchmarks to measure the backend's own hop: against a real model the
forward pass swings by milliseconds and hides it. Usage: python3 fixed-upstream.py <port>
"""
import asyncio
import sys

BODY = b'{"predictions": [{"label": "cat", "score": 0.9, "top_k": []}]}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
    % (len(BODY), BODY)
)


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            size = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    size = int(line.split(b":")[1])
            if size:
                await reader.readexactly(size)
            writer.write(ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=512)
    async with server:
        await server.serve_forever()


asyncio.run(main())

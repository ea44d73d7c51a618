#!/usr/bin/env python3
"""A database that stops answering, for the worker's tests (time_limits.bats).

    silent_db.py PORT_FILE [UPSTREAM_PORT [AFTER]]

Listens on a free port of 127.0.0.1 and writes it to PORT_FILE (once it
listens). Without UPSTREAM_PORT it is a black hole: it accepts every
connection and never answers (what a client sees of a server that hangs,
or of a connection gone half-open). With UPSTREAM_PORT it forwards each
connection to 127.0.0.1:UPSTREAM_PORT until it gets SIGUSR1; from then on it
is a black hole too: new connections are accepted and never answered, and
the established ones stay open but carry nothing more, either way (a
network partition, as the client sees it). Nothing is ever closed on a
client while silent. With AFTER (a string), it also goes silent by itself
right after it forwards a client's bytes that hold AFTER (a statement the
server then runs, whose answer never comes back), and says so on stdout
("silent after forwarding AFTER"): no race with a test's signal. Each
connection accepted is a line on stdout ("accepted N"). SIGTERM ends it.
"""

import asyncio
import os
import signal
import sys


async def main() -> None:
    port_file = sys.argv[1]
    upstream = int(sys.argv[2]) if len(sys.argv) > 2 else None
    after = sys.argv[3].encode() if len(sys.argv) > 3 else None
    silent = asyncio.Event()
    if upstream is None:
        silent.set()
    forever = asyncio.Event()  # never set: what a silent connection waits for
    accepted = 0

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, watch: bytes | None = None) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if silent.is_set():
                    await forever.wait()
                if not data:
                    break
                writer.write(data)
                await writer.drain()
                if watch is not None and watch in data:
                    print(f"silent after forwarding {watch.decode()}", flush=True)
                    silent.set()
        except OSError:
            pass
        if silent.is_set():
            await forever.wait()
        writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        print(f"accepted {accepted}", flush=True)
        if silent.is_set():
            await forever.wait()
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pump(client_reader, server_writer, after), pump(server_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, silent.set)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    port = server.sockets[0].getsockname()[1]
    with open(port_file + ".tmp", "w", encoding="ascii") as f:
        f.write(f"{port}\n")
    os.replace(port_file + ".tmp", port_file)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())

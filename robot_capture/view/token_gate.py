"""A token check in front of the live view's loopback WebSocket server (off-loopback binds).

``foxglove-sdk``'s server shows its listener no request headers, so it cannot check a token.
:class:`TokenGate` listens on the requested address, reads each connection's HTTP upgrade
request (at most 16 KiB of headers), checks the console token with the console's own rule
(:func:`robot_capture.console.web_guard._token_given`: ``?token=``, ``Authorization: Bearer``
or the console cookie), and then relays the connection byte for byte to the loopback server;
a request without the token gets ``401`` and is closed. One asyncio loop in a daemon thread.
"""
from __future__ import annotations

import asyncio
import threading

MAX_HEADER_BYTES = 16 * 1024
HEADER_TIMEOUT_S = 10.0


def _parse(head: bytes) -> tuple[str, dict]:
    """(query string, {lower-case header: value}) of an HTTP request head."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    target = parts[1] if len(parts) >= 2 else ""
    query = target.partition("?")[2]
    headers = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if sep:
            headers[k.strip().lower()] = v.strip()
    return query, headers


class TokenGate:
    """Listen on ``host:port``; relay token-bearing connections to ``upstream`` (host, port).

    Raises:
        OSError: the address cannot be bound (in use, not this machine's).
    """

    def __init__(self, host: str, port: int, upstream: tuple[str, int], token: str):
        self.upstream, self.token = upstream, token
        self.refused = 0
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, host, port))
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, name="view-token-gate", daemon=True)
        self._thread.start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from robot_capture.console.web_guard import _token_given

        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEADER_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, OSError):
            writer.close()
            return
        if len(head) > MAX_HEADER_BYTES:
            writer.close()
            return
        query, headers = _parse(head)
        if not _token_given(headers, query, self.token)[0]:
            self.refused += 1
            body = b"401: a token is required (ws://host:port/?token=...)\n"
            writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            try:
                await writer.drain()
            finally:
                writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        up_writer.write(head)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def stop(self) -> None:
        """Close the listener and stop the loop (open relays end with it)."""
        def _close():
            self._server.close()
            self._loop.stop()

        if self._loop.is_running():
            self._loop.call_soon_threadsafe(_close)
            self._thread.join(5)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await src.read(65536)
            if not data:
                break
            dst.write(data)
            await dst.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        try:
            dst.close()
        except OSError:
            pass

"""The egress proxy: the one way a sandboxed session's network traffic leaves the host.

Inside the sandbox a relay (`portforward.start_forward`) listens on 127.0.0.1 and hands every
connection to a unix socket; this proxy listens on that socket, speaks the HTTP proxy protocol
(`CONNECT` tunnels and absolute-form `http://` requests), and lets a connection out only when the
session's `NetworkPolicy` allows its host and the host's address is neither this machine's
loopback nor link-local (where cloud metadata services live).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import socket
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..core.network import NetworkPolicy

log = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
"""The most bytes a request line and its headers may take."""
HEAD_TIMEOUT = 30.0
"""Seconds a client has to send its request head."""
CONNECT_TIMEOUT = 30.0
"""Seconds to reach the destination before answering 504."""
REPORT_INTERVAL = 30.0
"""`on_blocked` is called at most once per host in this many seconds."""
MAX_CONNECTIONS = 256
"""Open connections one proxy serves at once; more get 503 (and past a few more, are dropped),
so a session cannot use up the server's file descriptors."""
LINGER = 2.0
"""Seconds an error answer waits for the client to finish sending before closing."""

_CHUNK = 256 * 1024
_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
_REASONS = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}  # fmt: skip
# Headers meant for this hop only (Proxy-* are matched by prefix), and Host, which is rewritten.
_DROPPED = frozenset({"connection", "keep-alive", "te", "trailer", "upgrade", "host"})
# A client may name headers in `Connection` to have them dropped, but never the body's framing:
# dropping that would make the origin read the body as a further request.
_FRAMING = frozenset({"content-length", "transfer-encoding"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
_ZERO_NET = ipaddress.ip_network("0.0.0.0/8")
_V4_COMPAT = ipaddress.ip_network("::/96")


class _Refusal(Exception):
    """A request answered with an error status instead of being forwarded."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Request:
    method: str
    host: str
    port: int
    head: bytes = b""
    """The head to send upstream (absolute-form requests only; a tunnel sends nothing)."""


class EgressProxy:
    """An HTTP proxy on a unix socket that lets a connection out when the policy allows it."""

    policy: NetworkPolicy
    """Checked for every new connection; assign a new one to change what the next may reach."""

    def __init__(
        self,
        socket_path: str,
        policy: NetworkPolicy,
        *,
        on_blocked: Callable[[str], None] | None = None,
        resolve: Mapping[str, str] | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.policy = policy
        self._on_blocked = on_blocked
        # Names an admin or a test points somewhere on purpose: they bypass DNS and the
        # loopback/link-local refusal, but never the policy.
        self._resolve = {_canonical(k): v for k, v in (resolve or {}).items()}
        self._reported: dict[str, float] = {}
        self._server: asyncio.Server | None = None
        self._inode = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        """Listen on the unix socket (replacing a stale one), readable by this user only."""
        if self._server is not None:
            raise RuntimeError("the egress proxy is already listening")
        path = self.socket_path
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise FileExistsError(f"{path} exists and is not a socket; remove it or pick "
                                      "another path for the egress proxy")  # fmt: skip
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            # Before listen() nobody can connect, so the mode is right before anyone could try.
            os.chmod(path, 0o600)
            self._inode = os.stat(path).st_ino
            self._closing = False
            self._server = await asyncio.start_unix_server(self._accept, sock=sock, limit=MAX_HEAD)
        except BaseException:
            sock.close()
            raise

    async def close(self) -> None:
        """Stop listening, end every open connection and remove the socket file."""
        self._closing = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
            with contextlib.suppress(OSError):
                if os.stat(self.socket_path).st_ino == self._inode:
                    os.unlink(self.socket_path)
        # Aborted transports close their sockets on the next turn of the loop.
        await asyncio.sleep(0)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback, not a coroutine, so each task is known to close() from its start.
        if self._closing or len(self._tasks) >= MAX_CONNECTIONS + 16:
            writer.transport.abort()
            return
        busy = len(self._tasks) >= MAX_CONNECTIONS
        task = asyncio.get_running_loop().create_task(self._handle(reader, writer, busy))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, busy: bool
    ) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                async with asyncio.timeout(HEAD_TIMEOUT):
                    lines = await _read_head(reader)
                if lines is None:
                    return
                request = _parse(lines)
                if busy:
                    raise _Refusal(503, f"catty: more than {MAX_CONNECTIONS} connections are "
                                        "open through this session's proxy; close some")  # fmt: skip
                up_reader, upstream = await self._open(request.host, request.port)
            except _Refusal as refusal:
                await _answer(reader, writer, refusal.status, refusal.message)
                return
            except TimeoutError:
                await _answer(reader, writer, 408, "catty: the request head did not arrive in time")
                return
            if request.method == "CONNECT":
                writer.write(_ESTABLISHED)
            else:
                upstream.write(request.head)
            await _relay(reader, writer, up_reader, upstream)
        except ConnectionError:
            pass
        except Exception:
            log.exception("egress proxy: a connection failed")
        finally:
            await self._shut(writer, upstream)

    async def _shut(self, *writers: asyncio.StreamWriter | None) -> None:
        # A normal end flushes what is left for the client; close() must not wait for that.
        open_ = [w for w in writers if w is not None]
        for w in open_:
            if self._closing:
                w.transport.abort()
            else:
                w.close()
        try:
            for w in open_:
                with contextlib.suppress(Exception):
                    await w.wait_closed()
        except asyncio.CancelledError:
            for w in open_:
                w.transport.abort()
            raise

    async def _open(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to HOST:PORT if policy and address allow it, else raise _Refusal."""
        policy = self.policy
        # The policy comes before any DNS lookup, so a refused name is never even resolved.
        if not policy.allows(host):
            self._report(host)
            raise _Refusal(403, f"catty: egress to {host} is not allowed by this session's "
                                f"network policy ({policy.level}). {_how_to_allow(policy.level)}")  # fmt: skip
        mapped = self._resolve.get(host)
        if mapped is not None:
            addresses = [mapped]
        else:
            addresses = await self._lookup(host, port)
        last: OSError | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    return await asyncio.open_connection(address, port, limit=_CHUNK)
            except TimeoutError:
                raise _Refusal(504, f"catty: {host}:{port} did not answer within "
                                    f"{CONNECT_TIMEOUT:g} s") from None  # fmt: skip
            except OSError as exc:
                last = exc
        raise _Refusal(502, f"catty: could not connect to {host}:{port}: {_why(last)}")

    async def _lookup(self, host: str, port: int) -> list[str]:
        """HOST's addresses, each checked; the caller connects to these and never re-resolves."""
        refused = _Refusal(403, f"catty: egress to {host} is refused: this machine's loopback and "
                                "link-local addresses are never reachable from a session")  # fmt: skip
        if host == "localhost" or host.endswith(".localhost"):
            self._report(host)
            raise refused
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise _Refusal(502, f"catty: could not resolve {host}: {_why(exc)}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        # One bad address taints the name: a mixed answer is how rebinding attacks start.
        if any(_forbidden(a) for a in addresses):
            self._report(host)
            raise refused
        return addresses

    def _report(self, host: str) -> None:
        if self._on_blocked is None:
            return
        now = time.monotonic()
        last = self._reported.get(host)
        if last is not None and now - last < REPORT_INTERVAL:
            return
        if len(self._reported) > 1024:  # a client cycling names must not grow this forever
            self._reported = {h: t for h, t in self._reported.items() if now - t < REPORT_INTERVAL}
        self._reported[host] = now
        try:
            self._on_blocked(host)
        except Exception:
            log.exception("egress proxy: on_blocked(%r) failed", host)


def _canonical(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _how_to_allow(level: str) -> str:
    if level == "custom":
        return "Add it to the environment's allowed_domains to allow it."
    return "Use an environment with network 'custom' that lists it in allowed_domains."


def _why(exc: OSError | None) -> str:
    return (exc.strerror or str(exc)) if exc is not None else "no address"


def _forbidden(address: str) -> bool:
    """True for addresses a session must never reach: this machine, or the link-local net."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 is loopback too, though ipaddress does not say so before 3.13.
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _V4_COMPAT and int(ip) > 1:
            ip = ipaddress.IPv4Address(int(ip))
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast:
        return True
    return isinstance(ip, ipaddress.IPv4Address) and ip in _ZERO_NET


async def _read_head(reader: asyncio.StreamReader) -> list[bytes] | None:
    """The request line and header lines, or None when the client left before sending any."""
    lines: list[bytes] = []
    size = 0
    while True:
        try:
            line = await reader.readline()
        except ValueError:  # one line longer than the reader's limit
            raise _Refusal(400, f"catty: request head longer than {MAX_HEAD} bytes") from None
        size += len(line)
        if size > MAX_HEAD:
            raise _Refusal(400, f"catty: request head longer than {MAX_HEAD} bytes")
        if not line.endswith(b"\n"):
            if not lines and not line:
                return None
            raise _Refusal(400, "catty: the connection ended inside the request head")
        line = line.rstrip(b"\r\n")
        if line:
            lines.append(line)
        elif lines:
            return lines
        # Empty lines before the request line are allowed (RFC 9112 2.2).


def _parse(lines: list[bytes]) -> _Request:
    """The request a head asks for, with the head to forward; _Refusal(400) if malformed."""
    parts = lines[0].decode("latin-1").split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[2].startswith("HTTP/1."):
        raise _Refusal(400, "catty: malformed request line; expected 'CONNECT host:port "
                            "HTTP/1.1' or 'GET http://host/path HTTP/1.1'")  # fmt: skip
    method, target, version = parts
    if _BAD_TARGET.search(target):
        raise _Refusal(400, "catty: malformed request target")
    headers: list[tuple[str, str]] = []
    for raw in lines[1:]:
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep or not _TOKEN.fullmatch(name) or "\r" in value or "\0" in value:
            raise _Refusal(400, "catty: malformed header line")
        headers.append((name, value.strip(" \t")))
    if method == "CONNECT":
        host, port = _authority(target, None)
        return _Request(method, host, port)
    if target[:7].lower() != "http://":
        scheme = target.partition("://")[0] if "://" in target else ""
        hint = "use CONNECT for https" if scheme.lower() == "https" else \
            "this is a proxy: send an absolute http:// URL or CONNECT host:port"  # fmt: skip
        raise _Refusal(400, f"catty: cannot forward {target[:200]!r}: {hint}")
    rest = target[7:]
    cut = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    authority, path = rest[:cut].rpartition("@")[2], rest[cut:].partition("#")[0]
    host, port = _authority(authority, 80)
    if not path.startswith("/"):
        path = "/" + path
    return _Request(method, host, port, _forward_head(method, path, version, host, port, headers))


def _authority(text: str, default_port: int | None) -> tuple[str, int]:
    """(host, port) from `host[:port]` or `[v6]:port`; _Refusal(400) if it is neither."""
    bad = _Refusal(400, f"catty: {text[:200]!r} is not a valid host:port")
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise bad
        port_text = rest[1:]
    else:
        host, _, port_text = text.partition(":")
    if not port_text:
        if default_port is None:
            raise bad
        port = default_port
    elif port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise bad
    host = _canonical(host)
    version: int
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        version = 0
    if text.startswith("[") and version != 6:  # brackets are for IPv6 literals only
        raise bad
    if not version and (len(host) > 253 or not _NAME.fullmatch(host)):
        raise bad
    return host, port


def _forward_head(method: str, path: str, version: str, host: str, port: int,
                  headers: list[tuple[str, str]]) -> bytes:  # fmt: skip
    """The head in origin form for HOST, with this hop's headers dropped and Connection: close."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() in ("connection", "proxy-connection")
        for token in value.split(",")
    } - _FRAMING
    # The Host header is rewritten from the URL, so a request for an allowed host cannot
    # ask the same server for another one.
    authority = (f"[{host}]" if ":" in host else host) + (f":{port}" if port != 80 else "")
    lines = [f"{method} {path} {version}", f"Host: {authority}"]
    for name, value in headers:
        low = name.lower()
        if low in _DROPPED or low in named or low.startswith("proxy-"):
            continue
        lines.append(f"{name}: {value}")
    # One request per upstream connection: the response then ends when the origin closes.
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int, message: str
) -> None:
    """Send an error answer, then read what the client still sends until it closes.

    Closing a socket with unread data resets the connection, and the client may then lose the
    answer; so the proxy ends its side and lets the client finish first, for LINGER at most.
    """
    body = (message + "\n").encode()
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")  # fmt: skip
    writer.write(head.encode() + body)
    with contextlib.suppress(ConnectionError, TimeoutError, ValueError):
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(LINGER):
            while await reader.read(_CHUNK):
                pass


async def _relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Pipe both ways until the origin is done, or the client is gone."""
    upload = asyncio.ensure_future(_pipe(client_reader, up_writer, half_close=True))
    download = asyncio.ensure_future(_pipe(up_reader, client_writer))
    try:
        done, _ = await asyncio.wait((upload, download), return_when=asyncio.FIRST_COMPLETED)
        # A client that only half-closed (sent all it will) still waits for the answer.
        if download not in done and upload.result():
            await download
    finally:
        upload.cancel()
        download.cancel()
        await asyncio.gather(upload, download, return_exceptions=True)


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, half_close: bool = False
) -> bool:
    """Copy until end of stream; True if it ended cleanly, False if a side broke."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if half_close and writer.can_write_eof():
            writer.write_eof()
    except ConnectionError:
        return False
    return True

"""The egress proxy as a sandboxed client meets it, and the network policy it enforces.

Nothing here leaves the machine: the origin is an HTTP server on 127.0.0.1, names reach it
through the proxy's `resolve` map or the fake DNS below, and the `net` fixture makes any other
lookup or connection from the event loop fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import socket
import stat
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from catty_jupyter.core import network
from catty_jupyter.core.network import BadDomain, NetworkPolicy, matches, normalize_pattern
from catty_jupyter.sandbox import egress
from catty_jupyter.sandbox.egress import EgressProxy
from catty_jupyter.sandbox.portforward import PortForward, start_forward
from tests.servers import free_port

ALLOWED = NetworkPolicy("custom", ("allowed.test",))
FULL = NetworkPolicy("full")
LOCAL = {"allowed.test": "127.0.0.1"}


class Origin:
    """An HTTP server on 127.0.0.1 that records every request it gets."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path.startswith("/big/"):
                    size = int(self.path.rsplit("/", 1)[1])
                    self.reply(bytes(i % 251 for i in range(size)))
                else:
                    self.reply(b"hello from " + self.path.encode())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.reply(b"echo: " + body, body)

            def reply(self, body: bytes, received: bytes = b"") -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                origin.seen.append((self.requestline, headers, received))
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeNet:
    """The event loop's network in these tests: loopback only, DNS answers from `dns`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.dns: dict[str, list[list[str]]] = {}
        """Name -> the answers to give, in turn (the last one repeats)."""
        self.redirect: dict[str, str] = {}
        """Address -> the loopback address a connection to it really goes to."""
        self.lookups: list[str] = []
        self.connects: list[str] = []
        self._getaddrinfo = loop.getaddrinfo
        self._create_connection = loop.create_connection

    async def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        self.lookups.append(host)
        if host in self.dns:
            answers = self.dns[host]
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answer]
        if host != "localhost" and not _is_ip(host):
            raise socket.gaierror(socket.EAI_NONAME, "not in this test's DNS")
        return await self._getaddrinfo(host, port, *args, **kwargs)

    async def create_connection(
        self, factory: Any, host: Any = None, port: Any = None, **kwargs: Any
    ) -> Any:
        self.connects.append(host)
        host = self.redirect.get(host, host)
        if host not in (None, "127.0.0.1", "::1", "localhost"):
            raise OSError(f"test guard: refused to connect to {host}")
        return await self._create_connection(factory, host, port, **kwargs)


def _is_ip(text: str) -> bool:
    """True for every form the resolver reads as an address (127.1 too), never asking DNS."""
    try:
        socket.getaddrinfo(text, None, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        return False
    return True


@pytest.fixture(autouse=True)
def net(jp_asyncio_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch) -> FakeNet:
    """Keep every lookup and connection the proxy makes on this machine."""
    fake = FakeNet(jp_asyncio_loop)
    monkeypatch.setattr(jp_asyncio_loop, "getaddrinfo", fake.getaddrinfo)
    monkeypatch.setattr(jp_asyncio_loop, "create_connection", fake.create_connection)
    return fake


@pytest.fixture
def origin() -> Iterator[Origin]:
    """A running origin server."""
    server = Origin()
    yield server
    server.close()


@pytest.fixture
def sock(tmp_path: Path) -> str:
    """Where the proxy listens."""
    return str(tmp_path / "egress.sock")


@contextlib.asynccontextmanager
async def running(proxy: EgressProxy) -> AsyncIterator[EgressProxy]:
    """The proxy, started, and closed on the way out."""
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def exchange(path: str, request: bytes) -> tuple[int, bytes]:
    """Send REQUEST to the proxy on PATH; the status and body of the answer."""
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def tunnel(path: str, authority: str, inner: bytes) -> tuple[int, bytes]:
    """CONNECT to AUTHORITY and send INNER through; (CONNECT status, the rest of the answer)."""
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = int(head.split()[1])
        if status != 200:
            return status, await asyncio.wait_for(reader.read(), 10)
        assert head == b"HTTP/1.1 200 Connection established\r\n\r\n"
        writer.write(inner)
        return status, await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def get(url: str, *headers: str) -> bytes:
    """An absolute-form GET, the way a client talks to an HTTP proxy."""
    host = url.split("/")[2]
    lines = [f"GET {url} HTTP/1.1", f"Host: {host}", *headers, "", ""]
    return "\r\n".join(lines).encode()


def inner_get(path: str) -> bytes:
    """A request to send through a tunnel."""
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


# --- through the proxy ---


async def test_plain_request_reaches_an_allowed_host_in_origin_form(
    sock: str, origin: Origin
) -> None:
    body = b"x" * 5000
    request = (
        f"POST http://allowed.test:{origin.port}/echo?x=1#frag HTTP/1.1\r\n"
        f"Host: somewhere-else.test\r\nProxy-Authorization: Basic c2VjcmV0\r\n"
        f"Proxy-Connection: keep-alive\r\nConnection: keep-alive, X-Hop, Content-Length\r\nX-Hop: 1\r\n"
        f"X-Kept: yes\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    async with running(EgressProxy(sock, ALLOWED, resolve=LOCAL)):
        status, answer = await exchange(sock, request)
        big_status, big = await exchange(
            sock, get(f"http://allowed.test:{origin.port}/big/3000000")
        )
    assert (status, answer) == (200, b"echo: " + body)
    line, headers, received = origin.seen[0]
    assert line == "POST /echo?x=1 HTTP/1.1" and received == body
    assert headers["host"] == f"allowed.test:{origin.port}"  # from the URL, not the client
    assert headers["connection"] == "close" and headers["x-kept"] == "yes"
    assert not [h for h in headers if h.startswith("proxy-") or h == "x-hop"], headers
    assert big_status == 200 and big == bytes(i % 251 for i in range(3_000_000))


async def test_connect_tunnels_to_an_allowed_host(sock: str, origin: Origin) -> None:
    async with running(EgressProxy(sock, ALLOWED, resolve=LOCAL)):
        status, answer = await tunnel(sock, f"allowed.test:{origin.port}", inner_get("/inside"))
    assert status == 200
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\nhello from /inside")
    assert origin.seen[0][0] == "GET /inside HTTP/1.1"


async def test_a_client_that_has_sent_everything_still_gets_the_answer(sock: str) -> None:
    async def count_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"got %d bytes" % len(await reader.read()))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(count_until_eof, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with running(EgressProxy(sock, ALLOWED, resolve=LOCAL)):
            reader, writer = await asyncio.open_unix_connection(sock)
            writer.write(f"CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n".encode() + b"z" * 100_000)
            writer.write_eof()  # the destination answers only once it has seen the end
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert answer == b"HTTP/1.1 200 Connection established\r\n\r\ngot 100000 bytes"


async def test_clients_in_the_sandbox_reach_it_through_the_relay(
    sock: str, origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    relay = await start_forward(PortForward(0, sock))
    port = relay.sockets[0].getsockname()[1]

    def urllib_get(url: str) -> tuple[int, bytes]:
        handler = urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{port}"})
        try:
            with urllib.request.build_opener(handler).open(url, timeout=10) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as e:
            return e.code, bytes(e.read())

    def tunnelled_get(host: str) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.set_tunnel(host, origin.port)
            conn.request("GET", "/tunnelled")
            return bytes(conn.getresponse().read())
        finally:
            conn.close()

    try:
        async with running(EgressProxy(sock, ALLOWED, resolve=LOCAL)):
            ok = await asyncio.to_thread(urllib_get, f"http://allowed.test:{origin.port}/via")
            refused = await asyncio.to_thread(urllib_get, "http://elsewhere.test/")
            through = await asyncio.to_thread(tunnelled_get, "allowed.test")
            with pytest.raises(OSError, match="403"):
                await asyncio.to_thread(tunnelled_get, "elsewhere.test")
    finally:
        relay.close()
        await relay.wait_closed()
        await asyncio.sleep(0.05)  # let the relay's last pipes see their end
    assert ok == (200, b"hello from /via")
    assert refused[0] == 403 and b"elsewhere.test is not allowed" in refused[1]
    assert through == b"hello from /tunnelled"
    assert [s[0] for s in origin.seen] == ["GET /via HTTP/1.1", "GET /tunnelled HTTP/1.1"]


async def test_a_host_off_the_list_is_refused_and_reported_once(
    sock: str, origin: Origin, net: FakeNet
) -> None:
    blocked: list[str] = []
    async with running(EgressProxy(sock, ALLOWED, on_blocked=blocked.append, resolve=LOCAL)):
        answers = [await exchange(sock, get("http://evil.test/")) for _ in range(2)]
        answers.append(await tunnel(sock, "EVIL.test.:443", b""))
        other = await exchange(sock, get("http://other.test/"))
    assert [status for status, _ in [*answers, other]] == [403] * 4
    assert answers[0][1] == (
        b"catty: egress to evil.test is not allowed by this session's network policy (custom). "
        b"Add it to the environment's allowed_domains to allow it.\n"
    )
    assert blocked == ["evil.test", "other.test"]
    assert origin.seen == [] and net.lookups == []  # a refused name is never even resolved


async def test_a_refused_host_is_reported_again_after_the_interval(
    sock: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(egress, "REPORT_INTERVAL", 0.2)
    blocked: list[str] = []
    async with running(EgressProxy(sock, ALLOWED, on_blocked=blocked.append)):
        await exchange(sock, get("http://evil.test/"))
        await exchange(sock, get("http://evil.test/"))
        await asyncio.sleep(0.3)
        await exchange(sock, get("http://evil.test/"))
    assert blocked == ["evil.test", "evil.test"]


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "LocalHost.", "app.localhost", "127.1", "2130706433", "0.0.0.0",
     "[::1]", "[::ffff:127.0.0.1]", "169.254.169.254", "[fe80::1]"],
)  # fmt: skip
async def test_loopback_and_link_local_are_refused_even_under_full(
    sock: str, origin: Origin, net: FakeNet, host: str
) -> None:
    blocked: list[str] = []
    async with running(EgressProxy(sock, FULL, on_blocked=blocked.append)):
        plain = await exchange(sock, get(f"http://{host}:{origin.port}/"))
        tunnelled = await tunnel(sock, f"{host}:{origin.port}", inner_get("/"))
    assert plain[0] == tunnelled[0] == 403, (plain, tunnelled)
    assert b"loopback and link-local addresses are never reachable" in plain[1]
    assert blocked == [host.strip("[]").lower().rstrip(".")]
    assert origin.seen == [] and net.connects == []


async def test_the_checked_dns_answer_is_the_address_connected_to(
    sock: str, origin: Origin, net: FakeNet
) -> None:
    # The first answer is harmless, every later one points at this machine: a rebinding attack.
    net.dns["rebind.test"] = [["192.0.2.77"], ["127.0.0.1"]]
    net.redirect["192.0.2.77"] = "127.0.0.1"  # where the origin really is
    net.dns["inside.test"] = [["127.0.0.1"]]
    net.dns["mixed.test"] = [["192.0.2.77", "169.254.169.254"]]
    blocked: list[str] = []
    async with running(EgressProxy(sock, FULL, on_blocked=blocked.append)):
        status, body = await exchange(sock, get(f"http://rebind.test:{origin.port}/r"))
        inside = await exchange(sock, get(f"http://inside.test:{origin.port}/"))
        mixed = await tunnel(sock, f"mixed.test:{origin.port}", inner_get("/"))
    assert (status, body) == (200, b"hello from /r")
    assert net.lookups.count("rebind.test") == 1 and net.connects == ["192.0.2.77"]
    assert inside[0] == mixed[0] == 403
    assert blocked == ["inside.test", "mixed.test"]


async def test_a_custom_wildcard_allows_subdomains_only(sock: str, origin: Origin) -> None:
    policy = NetworkPolicy("custom", (normalize_pattern("*.Example.test"),))
    names = {"a.example.test": "127.0.0.1", "example.test": "127.0.0.1"}
    async with running(EgressProxy(sock, policy, resolve=names)):
        sub = await exchange(sock, get(f"http://a.example.test:{origin.port}/sub"))
        apex = await exchange(sock, get(f"http://example.test:{origin.port}/apex"))
    assert sub == (200, b"hello from /sub")
    assert apex[0] == 403 and b"example.test is not allowed" in apex[1]


async def test_trusted_reaches_a_registry_and_nothing_else(sock: str, origin: Origin) -> None:
    trusted = NetworkPolicy("trusted")
    assert trusted.allows("pypi.org") and trusted.allows("files.pythonhosted.org")
    assert not trusted.allows("evil.test")
    # pypi.org is pointed at the local origin: the policy is checked, the internet never used.
    names = {"pypi.org": "127.0.0.1", "evil.test": "127.0.0.1"}
    async with running(EgressProxy(sock, trusted, resolve=names)):
        pypi = await exchange(sock, get(f"http://pypi.org:{origin.port}/simple/"))
        evil = await exchange(sock, get(f"http://evil.test:{origin.port}/"))
    assert pypi == (200, b"hello from /simple/")
    assert evil[0] == 403 and b"(trusted)" in evil[1]


async def test_a_new_policy_applies_to_the_next_connection(sock: str, origin: Origin) -> None:
    async with running(EgressProxy(sock, ALLOWED, resolve=LOCAL)) as proxy:
        before = await exchange(sock, get(f"http://allowed.test:{origin.port}/"))
        proxy.policy = NetworkPolicy("custom", ("other.test",))
        after = await exchange(sock, get(f"http://allowed.test:{origin.port}/"))
    assert before[0] == 200 and after[0] == 403


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"garbage\r\n\r\n",
        b"GET /relative HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
        b"GET https://allowed.test/ HTTP/1.1\r\n\r\n",
        b"GET http://allowed.test/ SPDY/3\r\n\r\n",
        b"CONNECT allowed.test HTTP/1.1\r\n\r\n",
        b"CONNECT allowed.test:99999 HTTP/1.1\r\n\r\n",
        b"CONNECT [allowed.test]:80 HTTP/1.1\r\n\r\n",
        b"GET http://bad_host!/ HTTP/1.1\r\n\r\n",
        b"GET http://allowed.test/ HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET http://allowed.test/ HTTP/1.1\r\nX: a\rInjected: b\r\n\r\n",
        b"GET http://allowed.test/ HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
        b"GET http://allowed.test/ HTTP/1.1\r\n" + (b"X-Many: " + b"b" * 1000 + b"\r\n") * 70,
        b"GET http://allowed.test/ HTTP/1.1\r\nX: unfinished",
    ],
    ids=["garbage", "origin-form", "https", "version", "no-port", "bad-port", "bracket-name",
         "bad-host", "bad-header", "bare-cr", "long-line", "long-head", "cut-short"],
)  # fmt: skip
async def test_a_malformed_request_gets_400_and_the_proxy_keeps_serving(
    sock: str, origin: Origin, request_bytes: bytes
) -> None:
    async with running(EgressProxy(sock, ALLOWED, resolve=LOCAL)):
        reader, writer = await asyncio.open_unix_connection(sock)
        writer.write(request_bytes)
        if request_bytes.endswith(b"unfinished"):
            writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        # A client that leaves without a word must not hurt either.
        _, silent = await asyncio.open_unix_connection(sock)
        silent.close()
        after = await exchange(sock, get(f"http://allowed.test:{origin.port}/after"))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:200]
    assert f"Content-Length: {len(body)}".encode() in head and body.startswith(b"catty: ")
    assert after == (200, b"hello from /after")
    assert [s[0] for s in origin.seen] == ["GET /after HTTP/1.1"]


async def test_an_unreachable_destination_gets_502(sock: str) -> None:
    async with running(EgressProxy(sock, ALLOWED, resolve=LOCAL)):
        port = free_port()
        plain = await exchange(sock, get(f"http://allowed.test:{port}/"))
        tunnelled = await tunnel(sock, f"allowed.test:{port}", b"")
    assert plain[0] == tunnelled[0] == 502
    assert plain[1].startswith(f"catty: could not connect to allowed.test:{port}".encode())


async def test_a_session_cannot_hold_more_than_the_connection_cap(
    sock: str, origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(egress, "MAX_CONNECTIONS", 2)
    async with running(EgressProxy(sock, ALLOWED, resolve=LOCAL)):
        idle = [await asyncio.open_unix_connection(sock) for _ in range(2)]
        await asyncio.sleep(0.05)  # both accepted, both waiting for a request head
        over = await exchange(sock, get(f"http://allowed.test:{origin.port}/"))
        idle[0][1].close()
        await asyncio.sleep(0.05)
        after = await exchange(sock, get(f"http://allowed.test:{origin.port}/after"))
        idle[1][1].close()
    assert over[0] == 503 and b"more than 2 connections" in over[1]
    assert after == (200, b"hello from /after")


async def test_close_ends_tunnels_and_leaves_no_listener(sock: str, origin: Origin) -> None:
    proxy = EgressProxy(sock, ALLOWED, resolve=LOCAL)
    await proxy.start()
    reader, writer = await asyncio.open_unix_connection(sock)
    writer.write(f"CONNECT allowed.test:{origin.port} HTTP/1.1\r\n\r\n".encode())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    await asyncio.wait_for(proxy.close(), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the open tunnel was ended
    writer.close()
    assert not os.path.exists(sock)
    with pytest.raises(OSError):
        await asyncio.open_unix_connection(sock)
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == []


async def test_start_replaces_a_stale_socket_and_only_its_user_may_connect(
    sock: str, origin: Origin, tmp_path: Path
) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(sock)
    stale.close()  # the file stays behind, as after a crash
    async with running(EgressProxy(sock, ALLOWED, resolve=LOCAL)):
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert (await exchange(sock, get(f"http://allowed.test:{origin.port}/")))[0] == 200
    not_a_socket = tmp_path / "file"
    not_a_socket.write_text("keep me")
    with pytest.raises(FileExistsError, match="is not a socket"):
        await EgressProxy(str(not_a_socket), ALLOWED).start()
    assert not_a_socket.read_text() == "keep me"


# --- the policy itself ---


@pytest.mark.parametrize(
    ("host", "pattern", "expected"),
    [("example.com", "example.com", True), ("EXAMPLE.com.", "example.com", True),
     ("a.example.com", "example.com", False), ("a.example.com", "*.example.com", True),
     ("a.b.example.com", "*.example.com", True), ("example.com", "*.example.com", False),
     ("badexample.com", "*.example.com", False), ("example.com.evil", "example.com", False)],
)  # fmt: skip
def test_matches(host: str, pattern: str, expected: bool) -> None:
    assert matches(host, pattern) is expected


def test_normalize_pattern_gives_the_canonical_form() -> None:
    assert normalize_pattern("  Example.COM. ") == "example.com"
    assert normalize_pattern("*.PyPI.org") == "*.pypi.org"


@pytest.mark.parametrize(
    ("pattern", "says"),
    [("https://example.com", "host name only"), ("example.com/simple", "host name only"),
     ("example.com:443", "host name only"), ("foo.*.com", "wildcard may only start"),
     ("*example.com", "wildcard may only start"), ("exa mple.com", "is not a host name"),
     ("-bad.com", "is not a host name"), ("a..b", "is not a host name"), ("", "is not a host name"),
     ("a" * 64 + ".com", "is not a host name"), (("a" * 60 + ".") * 5 + "com", "is not a host name")],
)  # fmt: skip
def test_normalize_pattern_refuses_what_is_not_a_host(pattern: str, says: str) -> None:
    with pytest.raises(BadDomain, match=says):
        normalize_pattern(pattern)


def test_levels_decide_what_a_policy_allows() -> None:
    assert not NetworkPolicy("none", ("pypi.org",), always_allowed=("api.anthropic.com",)).allows(
        "api.anthropic.com"
    )
    assert NetworkPolicy("full").allows("anything.test")
    assert not NetworkPolicy("none").uses_proxy and NetworkPolicy("trusted").uses_proxy
    custom = NetworkPolicy("custom", ("example.test",), always_allowed=("model.test",))
    assert custom.allows("example.test") and custom.allows("model.test")
    assert not custom.allows("pypi.org")
    assert NetworkPolicy("custom", ("example.test",), include_defaults=True).allows("pypi.org")
    assert NetworkPolicy("trusted", always_allowed=("model.test",)).allows("model.test")
    assert "pypi.org" in network.trusted_domains()
    with pytest.raises(ValueError, match="network must be one of"):
        NetworkPolicy("some")
    a = NetworkPolicy("custom", ("b.test", "a.test"))
    assert a.key() == NetworkPolicy("custom", ("a.test", "b.test")).key() != ALLOWED.key()

"""exchange/takedown/probe.py: one re-check against a real HTTP(S) server on loopback.

The only fakes are DNS (``StaticResolver``) and the network edge (``LoopbackRoute`` sends every
traced public address to the test's server): each request is real HTTP over a real socket.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest

from auth.tls import create_ca, issue_node_certificate
from exchange.takedown.model import Outcome
from exchange.takedown.probe import Prober
from routing.trace import Tracer
from tests.exchange.factories import T0, FakeClock, host_in, url_in
from tests.exchange.takedown.conftest import USER_AGENT
from tests.exchange.takedown.servers import (
    LoopbackRoute,
    WebServer,
    endless,
    forbidden,
    head_not_allowed,
    present,
    redirect,
    removed,
    slow,
)

NL_ADDRESS = "185.107.56.1"  # tests/conftest.py: NL, AS43350 NForce Entertainment B.V.

MakeProber = Callable[..., Prober]


def http_in(country: str, path: str = "/a.jpg") -> str:
    return url_in(country, path).replace("https://", "http://")


def test_content_that_is_there_is_online_with_the_re_traced_hoster(
    web_server: WebServer, make_prober: MakeProber, route: LoopbackRoute, clock: FakeClock
) -> None:
    web_server.set("/a.jpg", present())

    check = make_prober().check(http_in("NL"))

    assert check.outcome is Outcome.ONLINE
    assert (check.status, check.detail) == (200, "200 OK")
    assert (check.country, check.asn, check.organisation) == (
        "NL",
        43350,
        "NForce Entertainment B.V.",
    )
    assert (check.address, check.redirects, check.at) == (NL_ADDRESS, 0, clock())
    assert check.elapsed_ms >= 0
    # pinned: the socket went to the traced address (then loopback), the Host is the URL's
    assert route.asked == [(NL_ADDRESS, 80)]
    [request] = web_server.requests
    assert (request.method, request.host, request.path) == ("HEAD", host_in("NL"), "/a.jpg")
    assert request.headers["User-Agent"] == USER_AGENT


def test_an_explicit_port_is_asked_and_named_in_the_host_header(
    web_server: WebServer, make_prober: MakeProber, route: LoopbackRoute
) -> None:
    web_server.set("/a.jpg?id=7", present())

    check = make_prober().check(f"http://{host_in('NL')}:8080/a.jpg?id=7")

    assert check.outcome is Outcome.ONLINE
    assert route.asked == [(NL_ADDRESS, 8080)]
    assert web_server.requests[0].host == f"{host_in('NL')}:8080"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        (http_in("DE"), host_in("DE")),  # a name whose only address is IPv6
        ("http://[2a01:4f8::1]/a.jpg", "[2a01:4f8::1]"),  # an IPv6 literal
    ],
)
def test_an_ipv6_hosted_url_is_asked_at_its_ipv6_address(
    web_server: WebServer, make_prober: MakeProber, route: LoopbackRoute, url: str, host: str
) -> None:
    web_server.set("/a.jpg", present())

    check = make_prober().check(url)

    assert (check.outcome, check.country, check.asn) == (Outcome.ONLINE, "DE", 24940)
    assert route.asked == [("2a01:4f8::1", 80)]
    assert web_server.requests[0].host == host


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.ONLINE),
        (204, Outcome.ONLINE),
        (206, Outcome.ONLINE),
        (404, Outcome.GONE),
        (410, Outcome.GONE),
        (401, Outcome.UNAVAILABLE),
        (403, Outcome.UNAVAILABLE),
        (451, Outcome.UNAVAILABLE),
        (400, Outcome.UNAVAILABLE),
        (429, Outcome.UNREACHABLE),
        (500, Outcome.UNREACHABLE),
        (503, Outcome.UNREACHABLE),
    ],
)
def test_each_status_has_its_outcome_and_is_recorded(
    web_server: WebServer, make_prober: MakeProber, status: int, outcome: Outcome
) -> None:
    web_server.set("/a.jpg", present(status) if status < 400 else removed(status))

    check = make_prober().check(http_in("NL"))

    assert (check.outcome, check.status) == (outcome, status)
    assert check.detail.startswith(str(status))


def test_an_unknown_path_is_gone(web_server: WebServer, make_prober: MakeProber) -> None:
    check = make_prober().check(http_in("NL", "/never-there.jpg"))
    assert (check.outcome, check.status) == (Outcome.GONE, 404)


@pytest.mark.parametrize("head_status", [405, 501])
@pytest.mark.parametrize(
    ("get_status", "outcome"),
    [(200, Outcome.ONLINE), (404, Outcome.GONE), (403, Outcome.UNAVAILABLE)],
)
def test_head_not_allowed_falls_back_to_a_one_byte_get(
    web_server: WebServer,
    make_prober: MakeProber,
    head_status: int,
    get_status: int,
    outcome: Outcome,
) -> None:
    web_server.set("/a.jpg", head_not_allowed(get_status, head_status))

    check = make_prober().check(http_in("NL"))

    assert (check.outcome, check.status) == (outcome, get_status)
    head, get = web_server.requests
    assert (head.method, get.method) == ("HEAD", "GET")
    assert get.headers["Range"] == "bytes=0-0"
    assert get.headers["User-Agent"] == USER_AGENT


def test_a_never_ending_body_is_not_read(web_server: WebServer, make_prober: MakeProber) -> None:
    web_server.set("/a.jpg", endless())  # HEAD 405, then GET streams forever

    check = make_prober().check(http_in("NL"))

    assert (check.outcome, check.status) == (Outcome.ONLINE, 200)
    [stream] = web_server.wait_streams_ended(1)
    # the prober hung up after the headers: the server's writes failed, it did not hit its cap;
    # what it managed to send is what the kernel buffers took, never the stream
    assert stream.ended == "client-closed"
    assert stream.sent < 64 * 1024 * 1024


def test_a_redirect_on_the_same_host_is_followed(
    web_server: WebServer, make_prober: MakeProber
) -> None:
    web_server.set("/a.jpg", redirect("../moved/b.jpg", 301))
    web_server.set("/moved/b.jpg", removed(410))

    check = make_prober().check(http_in("NL"))

    assert (check.outcome, check.status, check.redirects) == (Outcome.GONE, 410, 1)
    assert [r.path for r in web_server.requests] == ["/a.jpg", "/moved/b.jpg"]


def test_a_redirect_to_another_host_is_re_traced_and_pinned_to_its_address(
    web_server: WebServer, make_prober: MakeProber, route: LoopbackRoute
) -> None:
    web_server.set("/a.jpg", redirect(f"https://{host_in('US')}:8443/b.jpg"), host=host_in("NL"))
    web_server.set("/b.jpg", present(), host=host_in("US"))

    check = make_prober(ssl_context=None).check(http_in("NL"))

    # the https hop reached the plain-HTTP test server: the TLS handshake fails, but only after
    # the redirect was re-traced to the US address and asked there, as its own host
    assert route.asked == [(NL_ADDRESS, 80), ("8.8.8.8", 8443)]
    assert check.outcome is Outcome.UNREACHABLE
    assert check.detail.startswith("TLS")
    # the Check describes the reported URL's host, not the redirect target's
    assert (check.country, check.asn, check.address) == ("NL", 43350, NL_ADDRESS)
    assert check.redirects == 1


def test_a_redirect_to_another_host_over_http_answers_for_that_host(
    web_server: WebServer, make_prober: MakeProber, route: LoopbackRoute
) -> None:
    web_server.set("/a.jpg", redirect(f"http://{host_in('US')}/b.jpg"), host=host_in("NL"))
    web_server.set("/b.jpg", present(), host=host_in("US"))

    check = make_prober().check(http_in("NL"))

    assert (check.outcome, check.status, check.redirects) == (Outcome.ONLINE, 200, 1)
    assert [r.host for r in web_server.requests] == [host_in("NL"), host_in("US")]
    assert route.addresses == {NL_ADDRESS, "8.8.8.8"}


@pytest.mark.parametrize(
    ("location", "refused"),
    [
        ("http://10.0.0.1/", "10.0.0.1 (private)"),
        ("http://127.0.0.1/admin", "127.0.0.1 (loopback)"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 (link-local)"),
        ("http://[::1]/", "::1 (loopback)"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1 (embedded-loopback)"),
        ("http://2130706433/", "127.0.0.1 (loopback)"),  # 127.0.0.1 written as one number
        ("http://0x7f.1:8080/", "127.0.0.1 (loopback)"),
        ("http://private.example/x", "10.0.0.1 (private)"),
        ("http://metadata.example/latest/meta-data/", "169.254.169.254 (link-local)"),
        ("http://inward-v6.example/", "::1 (loopback)"),
        ("http://also-inward.example/", "127.0.0.1 (loopback)"),  # public *and* inward
    ],
)
def test_a_redirect_to_a_special_purpose_address_is_refused_before_any_connection(
    web_server: WebServer,
    make_prober: MakeProber,
    route: LoopbackRoute,
    location: str,
    refused: str,
) -> None:
    web_server.set("/a.jpg", redirect(location))

    check = make_prober().check(http_in("NL"))

    assert (check.outcome, check.status) == (Outcome.REFUSED, 302)
    assert check.detail == f"redirect to special-purpose address {refused}"
    assert "meta-data" not in check.detail
    assert "admin" not in check.detail
    # refused before the network edge: only the reported host's address was ever routed
    assert route.addresses == {NL_ADDRESS}
    assert len(web_server.requests) == 1


@pytest.mark.parametrize(
    ("location", "detail"),
    [
        (f"ftp://{host_in('NL')}/a.jpg", "redirect to scheme ftp"),
        ("file:///etc/passwd", "redirect refused: scheme-not-allowed"),
        ("javascript:alert(1)", "redirect refused: scheme-not-allowed"),
        ("http://exa mple.com/", "redirect refused: url-unparseable"),
    ],
)
def test_a_redirect_off_http_is_refused(
    web_server: WebServer,
    make_prober: MakeProber,
    route: LoopbackRoute,
    location: str,
    detail: str,
) -> None:
    web_server.set("/a.jpg", redirect(location))

    check = make_prober().check(http_in("NL"))

    assert (check.outcome, check.detail) == (Outcome.REFUSED, detail)
    assert route.addresses == {NL_ADDRESS}


def test_a_redirect_loop_ends_at_the_limit_as_online(
    web_server: WebServer, make_prober: MakeProber
) -> None:
    web_server.set("/a.jpg", redirect("/b.jpg"))
    web_server.set("/b.jpg", redirect("/a.jpg", 307))

    check = make_prober(max_redirects=3).check(http_in("NL"))

    assert (check.outcome, check.detail, check.redirects) == (
        Outcome.ONLINE,
        "redirect limit (3)",
        3,
    )
    assert [r.path for r in web_server.requests] == ["/a.jpg", "/b.jpg", "/a.jpg", "/b.jpg"]


def test_a_redirect_to_a_name_without_address_is_unreachable(
    web_server: WebServer, make_prober: MakeProber
) -> None:
    web_server.set("/a.jpg", redirect("http://no-answer.example/"))

    check = make_prober().check(http_in("NL"))

    assert (check.outcome, check.detail) == (Outcome.UNREACHABLE, "redirect target has no address")


@pytest.mark.parametrize(
    ("url", "outcome", "detail"),
    [
        (
            "http://private.example/a.jpg",
            Outcome.REFUSED,
            "special-purpose address 10.0.0.1 (private)",
        ),
        (
            "http://127.0.0.1:8080/a.jpg",
            Outcome.REFUSED,
            "special-purpose address 127.0.0.1 (loopback)",
        ),
        ("http://[::1]/", Outcome.REFUSED, "special-purpose address ::1 (loopback)"),
        ("http://no-answer.example/a.jpg", Outcome.UNREACHABLE, "no address (no-answer)"),
        ("http://nowhere.example/a.jpg", Outcome.UNREACHABLE, "no address (nxdomain)"),
        (f"ftp://{host_in('NL')}/a.zip", Outcome.REFUSED, "scheme ftp: not checked"),
        ("not a url", Outcome.REFUSED, "invalid URL: url-unparseable"),
    ],
)
def test_a_url_with_no_address_to_ask_never_reaches_the_network(
    make_prober: MakeProber, route: LoopbackRoute, url: str, outcome: Outcome, detail: str
) -> None:
    check = make_prober().check(url)

    assert (check.outcome, check.detail, check.status) == (outcome, detail, None)
    assert route.asked == []


def test_the_first_hosting_candidate_is_asked_after_special_addresses(
    web_server: WebServer, make_prober: MakeProber, route: LoopbackRoute
) -> None:
    web_server.set("/a.jpg", present())

    check = make_prober().check("http://behind-private.example/a.jpg")

    assert (check.outcome, check.address, check.country) == (Outcome.ONLINE, NL_ADDRESS, "NL")
    assert route.addresses == {NL_ADDRESS}


def test_a_public_address_no_database_places_is_still_asked(
    web_server: WebServer, make_prober: MakeProber
) -> None:
    web_server.set("/a.jpg", present())

    check = make_prober().check("http://unplaced.example/a.jpg")

    assert (check.outcome, check.address, check.country, check.asn) == (
        Outcome.ONLINE,
        "1.1.1.1",
        None,
        None,
    )


def test_an_answer_slower_than_the_read_timeout_is_unreachable(
    web_server: WebServer, make_prober: MakeProber
) -> None:
    web_server.set("/a.jpg", slow(3.0))

    check = make_prober(read_timeout_s=0.3).check(http_in("NL"))

    assert (check.outcome, check.status, check.detail) == (
        Outcome.UNREACHABLE,
        None,
        "read timeout",
    )


def test_a_refused_connection_is_unreachable(
    probe_tracer: Tracer, clock: FakeClock, make_prober: MakeProber
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    # nothing listens on closed_port any more

    check = make_prober(route=lambda _a, _p: ("127.0.0.1", closed_port)).check(http_in("NL"))

    assert (check.outcome, check.detail) == (Outcome.UNREACHABLE, "connection refused")
    assert check.country == "NL"  # the trace is kept even when the host does not answer


@pytest.fixture
def hang_up_server() -> Iterator[int]:
    """A TCP server that reads the request and closes the connection without a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_a_host_that_hangs_up_is_unreachable(make_prober: MakeProber, hang_up_server: int) -> None:
    prober = make_prober(route=lambda _a, _p: ("127.0.0.1", hang_up_server))

    check = prober.check(http_in("NL"))

    assert (check.outcome, check.status) == (Outcome.UNREACHABLE, None)
    assert check.detail in {"connection closed without an answer", "connection reset"}


@pytest.fixture
def dribbling_server() -> Iterator[int]:
    """Answers ``200 OK``, then one header byte every 50 ms — each read is quick, the answer
    never ends (until a 10 s cap, when it completes the headers and hangs up)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def dribble(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(200):
                    if stop.wait(0.05):
                        return
                    conn.sendall(b"z")
                conn.sendall(b"\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                return  # the prober hung up

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=dribble, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    listener.close()


def test_an_answer_dribbled_within_each_read_timeout_is_cut_at_the_deadline(
    make_prober: MakeProber, dribbling_server: int
) -> None:
    prober = make_prober(
        route=lambda _a, _p: ("127.0.0.1", dribbling_server),
        read_timeout_s=1.0,  # each byte comes well within it
        deadline_s=0.5,
    )

    check = prober.check(http_in("NL"))

    # without the deadline this would be ONLINE 200, after the server's 10 s cap
    assert (check.outcome, check.status, check.detail) == (
        Outcome.UNREACHABLE,
        None,
        "deadline exceeded (0.5 s)",
    )
    assert check.country == "NL"


@pytest.mark.parametrize("user_agent", ["  ", "ihx\r\nX-Injected: 1"])
def test_a_user_agent_naming_the_hotline_on_one_line_is_required(
    probe_tracer: Tracer, user_agent: str
) -> None:
    with pytest.raises(ValueError, match="User-Agent"):
        Prober(probe_tracer, FakeClock(T0), user_agent=user_agent)


# -- https: SNI and the certificate are the URL's host, the socket goes to the traced address ----


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str, str]:
    """A test CA (PEM) and a server certificate for ``host_in('NL')`` only, as files."""
    ca = create_ca("takedown test CA", now=T0)
    leaf = issue_node_certificate(ca, "hoster", hosts=[host_in("NL")], now=T0)
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(leaf.certificate_pem)
    (folder / "key.pem").write_bytes(leaf.key_pem)
    return ca.certificate_pem, str(folder / "cert.pem"), str(folder / "key.pem")


@pytest.fixture
def tls_server(tls_files: tuple[bytes, str, str]) -> Iterator[WebServer]:
    _, cert, key = tls_files
    server = WebServer(tls=(cert, key))
    yield server
    server.close()


def _tls_prober(
    probe_tracer: Tracer, server: WebServer, ca_pem: bytes | None
) -> tuple[Prober, LoopbackRoute]:
    route = LoopbackRoute(server.port)
    context = ssl.create_default_context(cadata=ca_pem.decode()) if ca_pem else None
    # the certificate's validity is real time; the tracer's clock is the fake one
    prober = Prober(
        probe_tracer, FakeClock(T0), user_agent=USER_AGENT, route=route, ssl_context=context
    )
    return prober, route


def test_https_is_checked_against_the_urls_host(
    probe_tracer: Tracer, tls_server: WebServer, tls_files: tuple[bytes, str, str]
) -> None:
    tls_server.set("/a.jpg", forbidden(451))
    prober, route = _tls_prober(probe_tracer, tls_server, tls_files[0])

    check = prober.check(url_in("NL"))

    assert (check.outcome, check.status) == (Outcome.UNAVAILABLE, 451)
    assert route.asked == [(NL_ADDRESS, 443)]
    assert tls_server.sni == [host_in("NL")]
    assert tls_server.requests[0].host == host_in("NL")


def test_https_with_a_certificate_for_another_name_is_unreachable(
    probe_tracer: Tracer, tls_server: WebServer, tls_files: tuple[bytes, str, str]
) -> None:
    tls_server.set("/a.jpg", present())
    prober, _ = _tls_prober(probe_tracer, tls_server, tls_files[0])

    check = prober.check(url_in("US"))  # the certificate names only hosting-nl

    assert check.outcome is Outcome.UNREACHABLE
    assert check.detail == "TLS: certificate does not match the host name"
    # Red-team F5: Python's message names the host, and the detail reaches log:read readers.
    assert host_in("US") not in check.detail
    assert host_in("US")[:8] not in check.detail
    assert tls_server.requests == []


def test_https_with_an_untrusted_certificate_is_unreachable(
    probe_tracer: Tracer, tls_server: WebServer
) -> None:
    tls_server.set("/a.jpg", present())
    prober, _ = _tls_prober(probe_tracer, tls_server, None)  # the system's trust store

    check = prober.check(url_in("NL"))

    assert check.outcome is Outcome.UNREACHABLE
    assert check.detail == "TLS: certificate issuer unknown"
    assert host_in("NL") not in check.detail
    assert tls_server.requests == []

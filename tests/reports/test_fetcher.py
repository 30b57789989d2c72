"""The PDF's URL fetcher: what rendering may load (own static files, data: URIs, public
images) and everything it refuses, answered with a placeholder and logged."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from flask import Flask

from app.reports import fetcher as fetching
from tests.factories import Recorder, hostile_urls


def test_remote_images_can_be_turned_off(app: Flask, local_server: tuple[int, list[str]]) -> None:
    app.config["PDF_REMOTE_IMAGES"] = False
    fetcher = fetching.RestrictedFetcher(fetching.fetch_policy(app))
    response = fetcher.fetch("https://images.example.com/logo.png")
    assert response.read() == fetching.PLACEHOLDER
    assert "turned off" in fetcher.refused[0][1]


def _fetcher(**policy: object) -> fetching.RestrictedFetcher:
    static = Path(__file__).resolve().parents[2] / "app" / "static"
    return fetching.RestrictedFetcher(fetching.FetchPolicy(static_folder=static, **policy))  # type: ignore[arg-type]


@pytest.mark.parametrize("index", range(len(hostile_urls(1))))
def test_fetcher_refuses(
    index: int, local_server: tuple[int, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    port, hits = local_server
    url = hostile_urls(port)[index]
    fetcher = _fetcher()
    with caplog.at_level(logging.INFO, logger="app.reports.fetcher"):
        response = fetcher.fetch(url)
    assert response.read() == fetching.PLACEHOLDER
    assert response.content_type == "text/css"
    assert [u for u, _reason in fetcher.refused] == [url]
    assert [r.levelno for r in caplog.records if r.name == "app.reports.fetcher"] == [logging.INFO]
    assert hits == []


def test_placeholder_is_an_empty_image_and_an_empty_stylesheet() -> None:
    from weasyprint import CSS, HTML

    fetcher = _fetcher()
    html = HTML(
        string='<link rel=stylesheet href="file:///x.css"><img src="file:///x.png" width=5>'
        "<p>ok</p>",
        url_fetcher=fetcher,
    )
    imported = CSS(string="@import url('file:///y.css');", url_fetcher=fetcher)
    document = html.render(stylesheets=[imported])
    assert len(document.pages) == 1
    assert len(fetcher.refused) == 3


def test_fetcher_serves_static_files_from_disk() -> None:
    fetcher = _fetcher(remote=False)
    response = fetcher.fetch(fetching.OWN_ORIGIN + "/static/clickmap.css")
    assert response.content_type == "text/css"
    assert b":root" in response.read()
    assert fetcher.refused == []


@pytest.mark.parametrize(
    ("url", "content_type", "body"),
    [
        ("data:image/png;base64,iVBORw0KGgo=", "image/png", b"\x89PNG\r\n\x1a\n"),
        ("data:text/css,p%7Bcolor:red%7D", "text/css", b"p{color:red}"),
        ("data:,hello", "text/plain", b"hello"),
    ],
)
def test_fetcher_decodes_data_uris(url: str, content_type: str, body: bytes) -> None:
    response = _fetcher(remote=False).fetch(url)
    assert response.content_type == content_type
    assert response.read() == body


def _resolver(address: str) -> fetching.Resolver:
    def resolve(host: str, port: int, *_args: object) -> list[tuple[object, ...]]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolve


def test_fetcher_pins_the_checked_address(
    local_server: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection goes to the address that was checked, with the original Host."""
    port, hits = local_server
    # Pretend 127.0.0.1 is public, so the test server can stand in for a remote host.
    monkeypatch.setattr(fetching, "is_public_address", lambda address: address == "127.0.0.1")
    fetcher = fetching.RestrictedFetcher(
        fetching.FetchPolicy(static_folder=None, ports=frozenset({port})),
        resolver=_resolver("127.0.0.1"),
    )
    response = fetcher.fetch(f"http://images.example.com:{port}/logo.svg?v=2")
    assert response.content_type == "image/svg+xml"
    assert response.read().startswith(b"<svg")
    assert hits == [f"images.example.com:{port} /logo.svg?v=2"]


@pytest.mark.parametrize(
    "addresses",
    [["10.1.2.3"], ["93.184.216.34", "127.0.0.1"], ["::1"], ["::ffff:169.254.169.254"]],
)
def test_fetcher_refuses_names_resolving_to_private_addresses(addresses: list[str]) -> None:
    def resolve(host: str, port: int, *_args: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    fetcher = fetching.RestrictedFetcher(fetching.FetchPolicy(static_folder=None), resolver=resolve)
    assert fetcher.fetch("https://rebind.example.com/a.png").read() == fetching.PLACEHOLDER
    assert "non-public" in fetcher.refused[0][1]


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("text/html", b"<h1>Error</h1>", "content type"),
        ("image/png", b"x" * 5000, "larger than"),
    ],
)
def test_fetcher_refuses_unwanted_answers(
    local_server: tuple[int, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    content_type: str,
    body: bytes,
    reason: str,
) -> None:
    port, _hits = local_server
    monkeypatch.setattr(fetching, "is_public_address", lambda address: address == "127.0.0.1")
    monkeypatch.setattr(Recorder, "content_type", content_type)
    monkeypatch.setattr(Recorder, "body", body)
    fetcher = fetching.RestrictedFetcher(
        fetching.FetchPolicy(static_folder=None, ports=frozenset({port}), max_bytes=4096),
        resolver=_resolver("127.0.0.1"),
    )
    assert fetcher.fetch(f"http://img.example.com:{port}/x").read() == fetching.PLACEHOLDER
    assert reason in fetcher.refused[0][1]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
        ("not an address", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert fetching.is_public_address(address) is public


# -- Clickmap's own tracked addresses ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://t.example.com/c/AAAAtoken",
        "http://t.example.com/c/AAAAtoken",
        "https://T.EXAMPLE.COM/c/AAAAtoken",
        "https://t.example.com/%63/AAAAtoken",
        "https://t.example.com/C/AAAAtoken",
        "https://t.example.com/o/pixel.gif",
        "https://t.example.com/./c/AAAAtoken",
    ],
)
def test_fetcher_never_loads_our_own_tracked_addresses(app: Flask, url: str) -> None:
    """A tracked link or open pixel in an email's images would count a click or an open
    nobody made, on every PDF and every look at the heatmap."""
    asked: list[str] = []

    def resolve(host: str, port: int, *_args: object) -> list[tuple[object, ...]]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    assert app.config["TRACKING_BASE_URL"] == "https://t.example.com"
    fetcher = fetching.RestrictedFetcher(fetching.fetch_policy(app), resolver=resolve)
    assert fetcher.fetch(url).read() == fetching.PLACEHOLDER
    assert "tracked" in fetcher.refused[0][1]
    assert asked == []  # refused before anything was looked up


def test_tracking_paths_follow_the_base_path() -> None:
    assert fetching.tracking_paths("https://example.com/go") == (
        ("example.com", "/go/c/"),
        ("example.com", "/go/o/"),
    )


def test_a_redirect_to_our_tracked_link_is_refused(
    local_server: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, hits = local_server
    monkeypatch.setattr(fetching, "is_public_address", lambda address: address == "127.0.0.1")

    class Redirecting(Recorder):
        def do_GET(self) -> None:
            self.hits.append(self.path)
            self.send_response(302)
            self.send_header("Location", f"http://t.example.com:{port}/c/token")
            self.send_header("Content-Length", "0")
            self.end_headers()

    monkeypatch.setattr(Recorder, "do_GET", Redirecting.do_GET)
    fetcher = fetching.RestrictedFetcher(
        fetching.FetchPolicy(
            static_folder=None,
            ports=frozenset({port}),
            refused_paths=fetching.tracking_paths(f"http://t.example.com:{port}"),
        ),
        resolver=_resolver("127.0.0.1"),
    )
    assert fetcher.fetch(f"http://img.example.com:{port}/x.png").read() == fetching.PLACEHOLDER
    assert hits == ["/x.png"]  # the tracked link itself was never requested
    assert "tracked" in fetcher.refused[0][1]


# -- the email frame's cache ------------------------------------------------------------------


def _cache(port: int, **kwargs: object) -> fetching.RemoteCache:
    return fetching.RemoteCache(
        fetching.FetchPolicy(static_folder=None, ports=frozenset({port})),
        resolver=_resolver("127.0.0.1"),
        **kwargs,  # type: ignore[arg-type]
    )


def test_remote_cache_fetches_each_image_once(
    local_server: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, hits = local_server
    monkeypatch.setattr(fetching, "is_public_address", lambda address: address == "127.0.0.1")
    cache = _cache(port)
    url = f"http://images.example.com:{port}/logo.svg"
    first, again = cache.get(url), cache.get(url)
    assert first == again
    assert first.content_type == "image/svg+xml"
    assert first.body.startswith(b"<svg")
    assert hits == [f"images.example.com:{port} /logo.svg"]


def test_remote_cache_keeps_refusals_and_answers_the_placeholder(
    local_server: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, hits = local_server
    monkeypatch.setattr(Recorder, "content_type", "text/html")
    monkeypatch.setattr(fetching, "is_public_address", lambda address: address == "127.0.0.1")
    cache = _cache(port)
    url = f"http://images.example.com:{port}/error-page"
    assert cache.get(url) == fetching.Fetched(fetching.PLACEHOLDER, None)
    assert cache.get(url).content_type is None
    assert len(hits) == 1  # a refusal is remembered too
    for other in ("data:image/png;base64,AA==", "file:///etc/passwd", "/static/clickmap.css"):
        assert cache.get(other) == fetching.Fetched(fetching.PLACEHOLDER, None)


def test_remote_cache_stays_within_its_size(
    local_server: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, hits = local_server
    monkeypatch.setattr(fetching, "is_public_address", lambda address: address == "127.0.0.1")
    image = len(Recorder.body)
    url = f"http://images.example.com:{port}/"
    cache = _cache(port, max_bytes=3 * (image + len(url) + 1))
    for name in "abcd":  # four images, room for three: the least recently used goes
        cache.get(url + name)
    cache.get(url + "d")
    cache.get(url + "a")
    assert len(hits) == 5
    cache.get(url + "c")
    assert len(hits) == 5

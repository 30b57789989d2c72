"""Rewriting the links of an AMP for Email part must not add AMP4EMAIL validator errors.

The official validator (``amphtml-validator`` with the engine from next@15.5.29) is run
offline through ``tests/ampvalidator.py``; install it with ``bash tests/amp/install.sh``.
Without it these tests are skipped on a developer's machine and fail under CI=true.

Every file of the shared corpus's ``amp/`` folder is validated as shipped (and the result
checked against SOURCES.md, which proves the harness), then rewritten with tracking URLs
and validated again: the rewrite may not add any error or warning. Sanity tests show that
the check can fail at all: a harmful edit of an href is reported as a new error.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from tests import ampvalidator
from tests.ampvalidator import ValidationError
from tests.prerequisites import corpus_files, missing, shared_path, shared_reason

CORPUS_ROOT = shared_path("corpus")
AMP_DIR = CORPUS_ROOT / "amp" if CORPUS_ROOT else None
AMP_NAMES = [path.name for path in corpus_files("amp")]
# Parameters over the corpus files; without the corpus, one that skips (fails under CI).
AMP_PARAMS = AMP_NAMES or [pytest.param("", id="no-corpus", marks=pytest.mark.shared("corpus"))]

TRACKING_PREFIX = "https://t.example.com/c/"

# A minimal valid AMP4EMAIL document; {href} is the one link.
MINIMAL = """<!doctype html>
<html ⚡4email data-css-strict>
<head>
<meta charset="utf-8">
<script async src="https://cdn.ampproject.org/v0.js"></script>
<style amp4email-boilerplate>body{{visibility:hidden}}</style>
</head>
<body>
<p>Hello, <a href="{href}">world</a>.</p>
{extra}
</body>
</html>
"""


def _minimal(href: str = "https://example.com/", extra: str = "") -> str:
    return MINIMAL.format(href=href, extra=extra)


def _tracking_url(name: str, position: int) -> str:
    digest = hashlib.sha256(f"{name}#{position}".encode()).digest()
    token = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert len(token) == 43
    return TRACKING_PREFIX + token


def _show(errors: list[ValidationError]) -> str:
    return "\n".join(f"  {e}" for e in errors)


@dataclass(frozen=True)
class Rewrite:
    text: str
    tracked: dict[int, str]  # Link.position -> the tracking URL put in its place
    render: Callable[[Sequence[str]], str]  # result.compiled.render, for other URLs


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validator():
    reason = ampvalidator.unavailable_reason()
    if reason is not None:
        missing(f"AMP validator not installed: {reason}")
    return ampvalidator


@pytest.fixture(scope="module")
def corpus() -> dict[str, str]:
    if not AMP_NAMES:
        missing(shared_reason("corpus"))
    assert AMP_DIR is not None
    # bytes, so that line endings reach the rewriter and the validator unchanged
    return {name: (AMP_DIR / name).read_bytes().decode("utf-8") for name in AMP_NAMES}


@pytest.fixture(scope="module")
def shipped(validator, corpus) -> dict[str, list[ValidationError]]:
    return validator.validate_many(corpus)


@pytest.fixture(scope="module")
def rewrites(corpus) -> dict[str, Rewrite]:
    from app.ingest.rewriting import scan

    out = {}
    for name, text in corpus.items():
        result = scan(text, part="amp")
        size = max((link.position for link in result.links), default=-1) + 1
        urls = [""] * size
        tracked = {}
        for link in result.links:
            if link.tracked:
                urls[link.position] = tracked[link.position] = _tracking_url(name, link.position)
        out[name] = Rewrite(result.compiled.render(urls), tracked, result.compiled.render)
    return out


@pytest.fixture(scope="module")
def rewritten(validator, rewrites) -> dict[str, list[ValidationError]]:
    return validator.validate_many({name: r.text for name, r in rewrites.items()})


# --- the validator works, and the check can fail ----------------------------------------

# Each harmful href, with the error it must add to the minimal document.
HARMFUL_HREFS = {
    "javascript:alert(1)": "INVALID_URL_PROTOCOL",
    "ftp://t.example.com/c/x": "INVALID_URL_PROTOCOL",
    "//t.example.com/c/x": "DISALLOWED_RELATIVE_URL",
    "/c/x": "DISALLOWED_RELATIVE_URL",
}


def _two_links_and_an_error(href: str, bad: str) -> str:
    return _minimal(
        extra=f'<p><a href="{href}">a</a> <a href="{bad}">b</a></p>'
        f'<amp-img src="{bad}/i.png" width="1" height="1"></amp-img>'
    )


@pytest.fixture(scope="module")
def sanity(validator) -> dict[str, list[ValidationError]]:
    """Small documents for the sanity tests, validated in one run."""
    documents = {
        "minimal": _minimal(),
        "script": _minimal(extra='<script src="https://example.com/x.js"></script>'),
        "http-img": _minimal(
            extra='<amp-img src="http://example.com/a.png" width="1" height="1"></amp-img>'
        ),
        "not-amp": "<!doctype html><html><body><p>plain HTML</p></body></html>",
        # an existing error whose column and URL parameter change with a link's length
        "errors-before": _two_links_and_an_error("https://example.com/", "//example.com/x"),
        "errors-after": _two_links_and_an_error(
            _tracking_url("x", 0), "//t.example.com/c/longer-than-before"
        ),
        "errors-one-more": _two_links_and_an_error("//x.example/y", "//example.com/x"),
    }
    documents.update({f"href {href}": _minimal(href=href) for href in HARMFUL_HREFS})
    return validator.validate_many(documents)


def test_valid_minimal_document_passes(sanity):
    assert sanity["minimal"] == []


@pytest.mark.parametrize("name", ["script", "http-img", "not-amp"])
def test_known_violations_are_reported(sanity, name):
    assert any(e.is_error for e in sanity[name]), f"{name}: no error reported"


def test_http_image_error_is_the_expected_one(sanity):
    assert [(e.code, e.params) for e in sanity["http-img"]] == [
        ("INVALID_URL_PROTOCOL", ("src", "amp-img", "http"))
    ]


@pytest.mark.parametrize(("href", "code"), HARMFUL_HREFS.items())
def test_harmful_href_is_a_new_error(validator, sanity, href, code):
    added = validator.new_errors(sanity["minimal"], sanity[f"href {href}"])
    assert [e.code for e in added] == [code], _show(added)


def test_longer_url_on_an_erroneous_line_is_not_a_new_error(validator, sanity):
    # The same error, though its column moved and the URL in its parameters changed:
    # columns are ignored and URLs are masked.
    assert any(e.is_error for e in sanity["errors-before"])
    assert (
        validator.new_errors(sanity["errors-before"], sanity["errors-after"], include_warnings=True)
        == []
    )
    # ...while one more copy of an existing error is new (multiset difference).
    added = validator.new_errors(sanity["errors-before"], sanity["errors-one-more"])
    assert [e.code for e in added] == ["DISALLOWED_RELATIVE_URL"], _show(added)


def test_new_errors_accepts_documents(validator):
    # The convenience form: two documents, validated together in one run.
    added = validator.new_errors(_minimal(), _minimal(href="javascript:void(0)"))
    assert [e.code for e in added] == ["INVALID_URL_PROTOCOL"], _show(added)


def test_validator_never_goes_online(validator):
    # A validator engine given as a URL would be downloaded: the runner forbids it.
    proc = validator.run_cli(["-"], validator_js="https://cdn.ampproject.org/v0/validator_wasm.js")
    assert proc.returncode != 0
    assert "network access attempted" in proc.stderr


# --- the corpus as shipped: the harness reproduces SOURCES.md ----------------------------


def _expected_from_sources() -> dict[str, int]:
    """File name -> number of validator errors, per SOURCES.md's AMP table (PASS = 0)."""
    assert CORPUS_ROOT is not None
    expected = {}
    row = re.compile(r"^\|\s*`([^`]+\.html)`.*AMP validation:\s*(PASS|FAIL \((\d+) errors?\))")
    for line in (CORPUS_ROOT / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        m = row.match(line)
        if m:
            expected[m.group(1)] = 0 if m.group(2) == "PASS" else int(m.group(3))
    return expected


def test_corpus_is_present_and_documented(corpus):
    expected = _expected_from_sources()
    assert sorted(expected) == sorted(corpus), "SOURCES.md and amp/ list different files"


@pytest.mark.parametrize("name", AMP_PARAMS)
def test_shipped_file_validates_as_sources_says(shipped, name):
    expected = _expected_from_sources()[name]
    errors = [e for e in shipped[name] if e.is_error]
    assert len(errors) == expected, f"{name}: {len(errors)} errors, SOURCES.md says {expected}"


# --- rewriting adds no errors -----------------------------------------------------------


def test_corpus_has_tracked_links(rewrites):
    assert sum(len(r.tracked) for r in rewrites.values()) > 0


@pytest.mark.parametrize("name", AMP_PARAMS)
def test_rewrite_adds_no_validator_errors(shipped, rewrites, rewritten, validator, name):
    rewrite = rewrites[name]
    for position, url in rewrite.tracked.items():
        assert url in rewrite.text, f"{name}: tracking URL of link {position} not in output"
    added = validator.new_errors(shipped[name], rewritten[name], include_warnings=True)
    assert added == [], f"{name}: the rewrite added validator errors:\n{_show(added)}"


def test_harmful_render_is_caught(validator, corpus, shipped, rewrites):
    # The same check on a render that puts javascript: URLs in place of the tracking URLs
    # must fail for every file with a tracked link: one new error per tracked link.
    harmful = {}
    for name, rewrite in rewrites.items():
        if rewrite.tracked:
            size = max(rewrite.tracked) + 1
            harmful[name] = rewrite.render(
                [f"javascript:alert({p})" if p in rewrite.tracked else "" for p in range(size)]
            )
    if not harmful:
        pytest.skip("no AMP corpus file has a tracked link")
    results = validator.validate_many(harmful)
    for name, errors in results.items():
        added = validator.new_errors(shipped[name], errors)
        assert len(added) == len(rewrites[name].tracked), f"{name}:\n{_show(added)}"
        assert {e.code for e in added} == {"INVALID_URL_PROTOCOL"}, f"{name}:\n{_show(added)}"


# --- a personalized email: the honeypot stays out of the AMP part ---------------------------


def test_a_personalized_amp_part_adds_no_errors_and_no_honeypot(validator, session):
    """The honeypot's hiding styles (``mso-hide``) are not allowed in AMP for Email, so the
    AMP part is personalized without it and stays exactly as valid as it was sent."""
    from app.ingest.campaigns import Personalizer, VariantInput, create_campaign
    from app.ingest.rewriting import LinkRules
    from app.tokens import TokenCodec

    html = '<body><a href="https://example.com/">x</a></body>'
    created = create_campaign(
        session,
        "AMP",
        [VariantInput("A", html, _minimal())],
        rules=LinkRules(),
        max_part_bytes=1_000_000,
    )
    engine = Personalizer(TokenCodec(["k" * 40]), "https://t.example.com", LinkRules())
    [email] = list(engine.personalize(session, created.campaign.variants[0], ["r-1"]))
    assert email["amp"].count(TRACKING_PREFIX) == 1  # the sender's one link, no honeypot
    assert email["html"].count("https://t.example.com/c/") == 2  # the HTML part has one
    added = validator.new_errors(_minimal(), email["amp"], include_warnings=True)
    assert added == [], _show(added)


def test_the_open_pixel_adds_no_errors_to_the_amp_part(validator, session):
    """The AMP part's open pixel is an ``amp-img`` (AMP for Email allows neither
    ``amp-pixel`` nor ``amp-analytics``) over https, and it adds no error or warning."""
    from app.ingest.campaigns import Personalizer, VariantInput, create_campaign
    from app.ingest.rewriting import LinkRules
    from app.tokens import OpenCodec, TokenCodec

    html = '<body><a href="https://example.com/">x</a></body>'
    created = create_campaign(
        session,
        "AMP",
        [VariantInput("A", html, _minimal())],
        rules=LinkRules(),
        max_part_bytes=1_000_000,
    )
    engine = Personalizer(
        TokenCodec(["k" * 40]),
        "http://t.example.com",
        LinkRules(),
        pixel_codec=OpenCodec(["k" * 40]),
    )
    [email] = list(engine.personalize(session, created.campaign.variants[0], ["r-1"]))
    assert '<amp-img src="https://t.example.com/o/' in email["amp"]
    assert '<img src="http://t.example.com/o/' in email["html"]
    added = validator.new_errors(_minimal(), email["amp"], include_warnings=True)
    assert added == [], _show(added)

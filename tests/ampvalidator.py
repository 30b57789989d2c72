"""The official AMP validator in AMP4EMAIL mode, run offline, for the test suite.

``tests/amp/install.sh`` installs the ``amphtml-validator`` CLI (pinned in
``tests/amp/package-lock.json``) and the validator engine ``validator_wasm.js`` taken
from the npm package next@15.5.29 and checked against a pinned sha256. This module runs
that CLI with ``--validator_js`` pointing at the local engine, inside a Node process in
which every network API throws, so validation never reaches for the web.

Starting the validator costs about a second, so validate documents in batches with
:func:`validate_many` where possible.

Errors are compared by :attr:`ValidationError.signature`: severity, code, the error's
parameters with absolute URLs masked, and the line. Columns and messages are left out, as
they move or change when a link URL changes length. :func:`new_errors` is the multiset
difference of those signatures: what a rewrite added to a document.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

AMP_DIR = Path(__file__).resolve().parent / "amp"
CLI = AMP_DIR / "node_modules" / "amphtml-validator" / "cli.js"
VALIDATOR_JS = AMP_DIR / "validator_wasm.js"
# Must match VALIDATOR_JS_SHA256 in tests/amp/install.sh.
VALIDATOR_JS_SHA256 = "f1f4629ab36f555f5a9937a5cf00f0ef780bf025883c035d06389b151c896f26"
INSTALL_HINT = "run `bash tests/amp/install.sh` (needs node, npm and the npm registry)"

TIMEOUT_SECONDS = 180
BATCH_SIZE = 200  # documents per CLI call, well below any command-line length limit

# Run in the Node process before the CLI is loaded: every network entry point throws, so
# a validator that tried to download anything fails loudly instead of going online.
# The CLI path is process.argv[1], its options follow, as if it had been run directly.
_OFFLINE_RUNNER_JS = r"""
'use strict';
const blocked = (what) => function () {
  throw new Error('offline AMP validator: network access attempted (' + what + ')');
};
for (const name of ['http', 'https', 'http2', 'net', 'tls', 'dgram']) {
  const mod = require(name);
  for (const fn of ['request', 'get', 'connect', 'createConnection', 'createSocket']) {
    if (typeof mod[fn] === 'function') mod[fn] = blocked(name + '.' + fn);
  }
}
globalThis.fetch = blocked('fetch');
require(process.argv[1]);
"""

_URL = re.compile(r"(?:\b([A-Za-z][A-Za-z0-9+.-]*):)?//[^\s'\"()<>]*")


class ValidatorUnavailable(RuntimeError):
    """The validator is not installed; see :data:`INSTALL_HINT`."""


class ValidatorFailed(RuntimeError):
    """The validator ran but did not produce a result."""


def mask_urls(value: str) -> str:
    """``value`` with each absolute or scheme-relative URL cut down to its scheme."""
    return _URL.sub(lambda m: (f"{m.group(1)}:" if m.group(1) else "") + "//<url>", value)


@dataclass(frozen=True)
class ValidationError:
    """One error or warning reported by the validator."""

    severity: str  # "ERROR" or "WARNING"
    code: str  # e.g. "INVALID_URL_PROTOCOL"
    params: tuple[str, ...]
    line: int
    col: int = field(compare=False)
    message: str = field(compare=False)

    @property
    def is_error(self) -> bool:
        return self.severity == "ERROR"

    @property
    def signature(self) -> tuple[str, str, tuple[str, ...], int]:
        """What identifies this error across a rewrite of the document's link URLs."""
        return (self.severity, self.code, tuple(mask_urls(p) for p in self.params), self.line)

    def __str__(self) -> str:
        return f"{self.line}:{self.col} {self.severity} {self.code} {self.message}"


def unavailable_reason() -> str | None:
    """Why the validator cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return f"node is not on PATH; install Node.js and {INSTALL_HINT}"
    if not CLI.is_file():
        return f"the amphtml-validator CLI is not installed ({CLI} missing); {INSTALL_HINT}"
    if not VALIDATOR_JS.is_file():
        return f"{VALIDATOR_JS} is missing; {INSTALL_HINT}"
    if _sha256(VALIDATOR_JS) != VALIDATOR_JS_SHA256:
        return f"{VALIDATOR_JS} does not have the pinned sha256; {INSTALL_HINT}"
    return None


def available() -> bool:
    return unavailable_reason() is None


@functools.lru_cache(maxsize=4)
def _sha256_cached(path: Path, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_cached(path, st.st_mtime_ns, st.st_size)


def run_cli(args: Sequence[str], *, validator_js: str | None = None) -> subprocess.CompletedProcess:
    """Run the amphtml-validator CLI offline with ``args`` after its fixed options."""
    reason = unavailable_reason()
    if reason is not None:
        raise ValidatorUnavailable(reason)
    node = shutil.which("node")
    assert node is not None
    command = [
        node,
        "-e",
        _OFFLINE_RUNNER_JS,
        "--",
        str(CLI),
        "--validator_js",
        validator_js or str(VALIDATOR_JS),
        "--html_format",
        "AMP4EMAIL",
        "--format",
        "json",
        *args,
    ]
    # A fixed program; the arguments are file names and options.
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def validate_many(documents: Mapping[str, str]) -> dict[str, list[ValidationError]]:
    """Validate several documents as AMP4EMAIL in as few validator runs as possible."""
    results: dict[str, list[ValidationError]] = {}
    names = list(documents)
    with tempfile.TemporaryDirectory(prefix="clickmap-amp-") as tmp:
        for start in range(0, len(names), BATCH_SIZE):
            batch = names[start : start + BATCH_SIZE]
            paths: dict[str, str] = {}
            for index, name in enumerate(batch, start):
                path = Path(tmp) / f"{index:05d}.html"
                path.write_bytes(documents[name].encode("utf-8"))
                paths[name] = str(path)
            output = _run_json(list(paths.values()))
            for name, path in paths.items():
                results[name] = _parse_errors(output[path])
    return results


def validate(html: str) -> list[ValidationError]:
    """Validate one document as AMP4EMAIL; errors and warnings, in document order."""
    return validate_many({"document": html})["document"]


def new_errors(
    before: str | Iterable[ValidationError],
    after: str | Iterable[ValidationError],
    *,
    include_warnings: bool = False,
) -> list[ValidationError]:
    """The errors of ``after`` that ``before`` does not have (multiset difference).

    Either argument may be a document or its already computed errors. Warnings are left
    out unless ``include_warnings``.
    """
    documents = {k: v for k, v in (("before", before), ("after", after)) if isinstance(v, str)}
    validated = validate_many(documents) if documents else {}
    old = validated["before"] if isinstance(before, str) else list(before)
    new = validated["after"] if isinstance(after, str) else list(after)

    def wanted(error: ValidationError) -> bool:
        return include_warnings or error.is_error

    remaining = Counter(e.signature for e in old if wanted(e))
    added = []
    for error in new:
        if not wanted(error):
            continue
        if remaining[error.signature] > 0:
            remaining[error.signature] -= 1
        else:
            added.append(error)
    return added


def _run_json(paths: list[str]) -> dict:
    proc = run_cli(paths)
    # Exit status 1 means "some document failed validation" as well as "crashed", so
    # judge by the output: one JSON object with a result per input file.
    try:
        output = json.loads(proc.stdout)
    except ValueError:
        output = None
    if not isinstance(output, dict) or any(p not in output for p in paths):
        raise ValidatorFailed(
            f"amphtml-validator exited {proc.returncode} without a result for every file;\n"
            f"stderr: {proc.stderr.strip()[:2000]}\nstdout: {proc.stdout.strip()[:2000]}"
        )
    return output


def _parse_errors(result: dict) -> list[ValidationError]:
    errors = [
        ValidationError(
            severity=str(e.get("severity", "UNKNOWN_SEVERITY")),
            code=str(e.get("code", "UNKNOWN_CODE")),
            params=tuple(str(p) for p in e.get("params") or ()),
            line=int(e.get("line", 0)),
            col=int(e.get("col", 0)),
            message=str(e.get("message", "")),
        )
        for e in result.get("errors", ())
    ]
    if result.get("status") != "PASS" and not any(e.is_error for e in errors):
        raise ValidatorFailed(f"status {result.get('status')!r} without any error: {result}")
    return errors

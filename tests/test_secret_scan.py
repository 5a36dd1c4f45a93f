"""No report or log of a certification holds a secret the run handled (issue 5, "Secrets").

A full certification runs as `make demo` runs it (`pytest --target embedded --report-dir
DIR`, every profile), with every other output a user may switch on: JUnit XML with captured
logs, allure results, `-rA` terminal output with every captured log at DEBUG. The test-only
plugin `tests/secret_tap.py` harvests, inside that run, every secret that crossed HTTP and
every private key generated (see its docstring for what counts). Then every file the run
wrote is scanned for each of them: the report directory, the captured stdout and stderr,
anything under the HOME and TMPDIR the run was given, and any file in the checkout that
appeared or changed while it ran (there only for the secrets the run made: the embedded
deployment's configured demo secrets are literals of our own source files).

What the scan counts as a leak:
- a harvested value of at least `MIN_LENGTH` (12) characters, found verbatim or in a cheap
  encoding (JSON-escaped, percent-encoded, form-encoded, HTML-escaped, base64 or base64url).
  Shorter values are left out: the run's deliberate placeholders (`not-a-token`) and short
  fixtures would match ordinary text; every real credential here is far longer (codes and
  opaque tokens 43 characters, ES256 signatures 86, client secrets 19 or more);
- of a JWT, only its signature: reports keep a JWT's header and claims readable on purpose,
  and without its signature it cannot be replayed; a leaked signature completes the token;
- inside any base64url JSON segment (`eyJ...`, a JWT header or claims set) in any file, the
  same values after decoding: a private key in a DPoP proof's `jwk` header is a leak even
  though the header is kept.

The scan proves itself twice: planted secrets in every encoding are found (and their
redacted forms are not), and a run whose redactor forgets the `code` field is caught leaking
authorization codes and nothing else.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from conformance.evidence import Redactor
from conformance.plugin import redact_free_text
from tests.conftest import REPO_ROOT, SUITE_TIMEOUT, suite_command
from tests.secret_tap import BREAK_ENV, CONFIGURED, OUT_ENV

MIN_LENGTH = 12
# The scan reads every file once: each secret is indexed by its GRAM-character slices at its
# first STRIDE offsets, and the text is probed every STRIDE characters, so any occurrence of a
# secret at least GRAM + STRIDE - 1 long is hit; shorter secrets are searched for directly.
GRAM, STRIDE = MIN_LENGTH, 16
# Directories of the checkout that a run does not write (or that hold only bytecode).
_UNWATCHED = {".git", ".venv", ".mypy_cache", ".ruff_cache", "__pycache__"}
# Hypothesis (the fuzz checks) caches the literals of the local source files it parses in
# `.hypothesis/constants/`, e.g. the demo client secrets written in `reference/settings.py`:
# source text, never a value of the run, so it is no leak.
_SOURCE_LITERAL_CACHE = (".hypothesis", "constants")
_BASE64_JSON = re.compile(r"eyJ[A-Za-z0-9_-]{8,}")
# What a user may switch on besides `make demo`'s options; every output is scanned.
VERBOSE_OUTPUTS = (
    "-rA",
    "--log-level=DEBUG",
    "-o",
    "junit_logging=all",
    "--junitxml=report/junit.xml",
    "--alluredir=report/allure",
)


@dataclass(frozen=True)
class Secret:
    value: str
    kind: str
    source: str

    def describe(self) -> str:
        """The secret named without being shown (our own failure output is a log too)."""
        digest = hashlib.sha256(self.value.encode()).hexdigest()[:8]
        return f"{self.kind} {self.value[:4]}...<{len(self.value)} chars, {digest}> ({self.source})"


@dataclass(frozen=True)
class Leak:
    path: str
    secret: Secret
    encoding: str

    def __str__(self) -> str:
        return f"{self.path}: {self.secret.describe()}, {self.encoding}"


def encodings(value: str) -> dict[str, str]:
    """The forms a secret may take in a report or log, by name (the same text only once)."""
    raw = value.encode()
    forms = {
        "verbatim": value,
        "JSON-escaped": json.dumps(value)[1:-1],
        "percent-encoded": quote(value, safe=""),
        "form-encoded": quote_plus(value),
        "HTML-escaped": html.escape(value),
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    unique: dict[str, str] = {}
    for name, text in forms.items():
        if len(text) >= MIN_LENGTH and text not in unique.values():
            unique[name] = text
    return unique


def _decoded_json_segments(text: str) -> str:
    """Every base64url JSON segment in `text` (JWT headers and claims), decoded."""
    decoded = []
    for match in _BASE64_JSON.finditer(text):
        segment = match.group(0)
        try:
            raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except ValueError:
            continue
        decoded.append(raw.decode("utf-8", errors="replace"))
    return "\n".join(decoded)


class Scanner:
    """Finds any of many secrets, in any of their encodings, in one pass over a text."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        self.secrets = [s for s in secrets if len(s.value) >= MIN_LENGTH]
        self._grams: dict[str, list[tuple[str, int, Secret, str]]] = {}
        self._short: list[tuple[str, Secret, str]] = []
        for secret in self.secrets:
            for encoding, text in encodings(secret.value).items():
                if len(text) >= GRAM + STRIDE - 1:
                    for offset in range(STRIDE):
                        gram = text[offset : offset + GRAM]
                        self._grams.setdefault(gram, []).append((text, offset, secret, encoding))
                else:
                    self._short.append((text, secret, encoding))

    def find(self, text: str) -> Iterator[tuple[Secret, str]]:
        for position in range(0, len(text), STRIDE):
            for needle, offset, secret, encoding in self._grams.get(
                text[position : position + GRAM], ()
            ):
                if position >= offset and text.startswith(needle, position - offset):
                    yield secret, encoding
        for needle, secret, encoding in self._short:
            if needle in text:
                yield secret, encoding

    def scan(self, files: Iterable[Path], root: Path) -> list[Leak]:
        leaks: dict[tuple[str, str], Leak] = {}
        for path in files:
            try:
                text = path.read_bytes().decode("utf-8", errors="replace")
            except FileNotFoundError:  # a checkout file someone removed since
                continue
            name = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
            for haystack, where in ((text, ""), (_decoded_json_segments(text), ", base64 JSON")):
                for secret, encoding in self.find(haystack):
                    leaks.setdefault((name, secret.value), Leak(name, secret, encoding + where))
        return list(leaks.values())


def _files_under(root: Path) -> dict[Path, int]:
    """Every file under `root` with its modification time, skipping unwatched directories."""
    files = {}
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if d not in _UNWATCHED]
        if Path(directory).parts[-2:] == _SOURCE_LITERAL_CACHE:
            continue
        for name in names:
            path = Path(directory, name)
            with contextlib.suppress(FileNotFoundError):
                if path.is_file():
                    files[path] = path.stat().st_mtime_ns
    return files


@dataclass
class TappedRun:
    """A certification run with the secret tap, and every file it wrote."""

    exit_code: int
    work: Path  # the run's working directory: report, HOME, TMPDIR, stdout and stderr
    written: list[Path]  # every file under `work`
    checkout_changes: list[Path]  # files of the checkout that appeared or changed meanwhile
    secrets: list[Secret]
    requests: dict[str, int]  # requests the tap saw, by transport: "sync" (the suite's), "async"

    @property
    def results(self) -> dict[str, Any]:
        return dict(json.loads((self.work / "report" / "results.json").read_text()))

    def output(self) -> str:
        return (self.work / "stdout.txt").read_text()[-3000:]

    def kinds(self) -> set[str]:
        return {s.kind for s in self.secrets if len(s.value) >= MIN_LENGTH}

    def leaks(self) -> list[Leak]:
        made = [s for s in self.secrets if not s.kind.startswith(CONFIGURED)]
        return [
            *Scanner(self.secrets).scan(self.written, self.work),
            *Scanner(made).scan(self.checkout_changes, REPO_ROOT),
        ]


def certify_with_tap(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> TappedRun:
    """`pytest --target embedded --report-dir report ARGS` with the tap, in a fresh process
    whose HOME and TMPDIR are empty directories of its own."""
    work, harvest = tmp_path / "work", tmp_path / "harvest.json"
    home, tmp = work / "home", work / "tmp"
    for directory in (home, tmp):
        directory.mkdir(parents=True)
    child_env = {
        **os.environ,
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        OUT_ENV: str(harvest),
        **(env or {}),
    }
    checkout_before = _files_under(REPO_ROOT)
    with open(work / "stdout.txt", "w") as stdout, open(work / "stderr.txt", "w") as stderr:
        completed = subprocess.run(
            suite_command("report", "-p", "tests.secret_tap", "--target", "embedded", *args),
            cwd=work,
            env=child_env,
            stdout=stdout,
            stderr=stderr,
            timeout=SUITE_TIMEOUT,
            check=False,
        )
    checkout_after = _files_under(REPO_ROOT)
    changed = [p for p, mtime in checkout_after.items() if checkout_before.get(p) != mtime]
    tapped = json.loads(harvest.read_text())
    secrets = [Secret(**s) for s in tapped["secrets"]]
    return TappedRun(
        completed.returncode, work, list(_files_under(work)), changed, secrets, tapped["requests"]
    )


@pytest.fixture(scope="module")
def certification(tmp_path_factory: pytest.TempPathFactory) -> TappedRun:
    """The whole suite against the clean embedded reference, every output switched on."""
    return certify_with_tap(tmp_path_factory.mktemp("secret-scan"), *VERBOSE_OUTPUTS)


def test_tapped_certification_is_conformant(certification: TappedRun) -> None:
    assert certification.exit_code == 0, certification.output()
    profiles = certification.results["profiles"]
    assert profiles and all(p["conformant"] for p in profiles)


def test_tap_harvests_every_kind_of_secret(certification: TappedRun) -> None:
    """The scan proves nothing about a secret the tap never saw: it sees the suite's own
    client (sync) and the embedded servers' outbound calls (async), and every kind of secret."""
    assert certification.requests["sync"] > 500 and certification.requests["async"] > 20
    kinds = " | ".join(sorted(certification.kinds()))
    for expected in (
        "access_token",
        "refresh_token",
        "id_token",
        "code",
        "code_verifier",
        "client_secret",
        "password",
        "assertion",  # ID-JAGs redeemed with the jwt-bearer grant
        "subject_token",
        "DPoP proof",
        "authorization:basic",
        "authorization:bearer",
        "cookie",
        "private key PEM",
        "JWK d",
        "JWK qi",
    ):
        assert expected in kinds, f"no {expected!r} harvested; kinds: {kinds}"
    assert len(certification.secrets) > 500


def test_reports_and_logs_hold_no_secret(certification: TappedRun) -> None:
    work = certification.work
    names = {str(p.relative_to(work)) for p in certification.written if p.is_relative_to(work)}
    for expected in ("report/results.json", "report/summary.md", "report/junit.xml", "stdout.txt"):
        assert expected in names, sorted(names)
    assert any(name.startswith("report/allure/") for name in names), sorted(names)
    leaks = certification.leaks()
    assert not leaks, "\n".join(str(leak) for leak in leaks[:40])


def test_scanner_finds_planted_secrets(tmp_path: Path) -> None:
    secret = Secret("s3cr3t+value/with=odd&chars~0123456789abcdef", "planted", "here")
    pem = (
        "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n" + "-" * 5
    )
    key = Secret(pem, "private key PEM", "here")
    signature = Secret("c2lnbmF0dXJlLW9mLWEtdG9rZW4tdGhhdC1tdXN0LW5vdC1sZWFr", "sig", "here")
    header = (
        base64.urlsafe_b64encode(json.dumps({"jwk": {"kty": "EC", "d": secret.value}}).encode())
        .decode()
        .rstrip("=")
    )
    planted = {
        "verbatim.txt": f"before {secret.value} after",
        "json.json": json.dumps({"x": [pem]}),
        "percent.log": f"GET /cb?token={quote(secret.value, safe='')}",
        "form.txt": f"token={quote_plus(secret.value)}",
        "html.html": f"<p>{html.escape(secret.value)}</p>",
        "b64.txt": base64.b64encode(secret.value.encode()).decode(),
        "jwt.txt": f"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.{signature.value}",
        "jwk-header.txt": f"{header}.eyJzdWIiOiJhIn0.<redacted-signature>",
    }
    for name, text in planted.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "clean.txt").write_text(
        "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.<redacted-signature> <redacted:0a1b2c3d> s3cr3t"
    )
    scanner = Scanner([secret, key, signature])
    found = {leak.path: leak for leak in scanner.scan(sorted(tmp_path.iterdir()), tmp_path)}
    assert set(found) == set(planted), sorted(found)
    assert found["json.json"].secret is key and found["json.json"].encoding == "JSON-escaped"
    assert found["jwk-header.txt"].encoding == "verbatim, base64 JSON"
    assert found["jwt.txt"].secret is signature


def test_scan_catches_a_redactor_that_forgets_codes(tmp_path: Path) -> None:
    """With `code` dropped from the redactor's fields, the scan finds authorization codes in
    the reports, and nothing else: checks that fail (a defect is on) leak no other secret
    through their messages, the terminal or the JUnit and allure results either."""
    run = certify_with_tap(
        tmp_path,
        "-k",
        "test_token_endpoint or test_bearer_token_usage",
        "--defect",
        "token-code-reusable",
        "--defect",
        "rs-accepts-query-token",
        *VERBOSE_OUTPUTS,
        env={BREAK_ENV: "code"},
    )
    assert run.exit_code == 1, run.output()
    leaks = run.leaks()
    assert any(leak.path == "report/results.json" for leak in leaks), leaks
    others = [leak for leak in leaks if leak.secret.kind != "code"]
    assert leaks and not others, "\n".join(str(leak) for leak in others[:40])


def _segment(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_jwt_evidence_loses_its_signature_and_any_private_jwk() -> None:
    """What the scan relies on: a JWT keeps its readable header and claims, never its
    signature; a private key in its `jwk` header (a malformed DPoP proof) is redacted."""
    redactor = Redactor()
    claims = _segment({"htm": "POST", "jti": "j-1"})
    public = {"kty": "EC", "crv": "P-256", "x": "x-coordinate", "y": "y-coordinate"}
    signed = f"{_segment({'typ': 'dpop+jwt', 'jwk': public})}.{claims}.c2lnbmF0dXJl"
    private_header = _segment({"typ": "dpop+jwt", "jwk": {**public, "d": "private-scalar"}})
    leaky = f"{private_header}.{claims}.c2lnbmF0dXJl"
    unsigned = f"{private_header}.{claims}."

    assert redactor.header("DPoP", signed) == signed.replace("c2lnbmF0dXJl", "<redacted-signature>")
    for proof in (leaky, unsigned):
        shown = redactor.scrub(f"proof: {proof}")
        header, shown_claims, signature = shown.removeprefix("proof: ").split(".")
        assert "private-scalar" not in _decoded_json_segments(shown), shown
        assert json.loads(base64.urlsafe_b64decode(header + "==="))["jwk"]["x"] == "x-coordinate"
        assert shown_claims == claims
        assert signature == ("<redacted-signature>" if proof is leaky else "")
        assert redactor.scrub(shown) == shown  # redacting twice changes nothing


def test_free_text_of_a_check_record_is_redacted() -> None:
    """A finding message, note or reason that quotes a credential is redacted too."""
    redactor = Redactor()
    token = "opaque-refresh-token-0123456789"
    redactor.remember(token)
    record: dict[str, Any] = {
        "reason": f"the AS accepted {token}",
        "notes": [f"replayed {token}"],
        "findings": [{"message": f"{token} still works"}],
    }
    redact_free_text(record, redactor)
    assert token not in json.dumps(record)
    assert "<redacted:" in record["findings"][0]["message"]

"""report.html shows the verdicts a person must see, safely, in a real browser.

Debian's Chromium (/usr/bin/chromium, driven by Playwright; never a downloaded browser) opens
the report.html the suite wrote for the clean embedded reference (the session's `clean_run`)
and for a defective run of the dpop profile, and a page rendered from a tiny hostile
results document. What is asserted is what a reader sees: banners and their colour (decoded
from a screenshot), rows that a filter shows and hides, an exchange that only its expansion
reveals, no script a target smuggled in, no request leaving the page, no console error, and
every profile still there with JavaScript off.

The tests at the top need no browser: escaping, completeness, in-page links
(render time is measured by `make bench`, not by a timed test).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, Route, sync_playwright

from reports import results_schema
from reports.html import CONTENT_SECURITY_POLICY, render_html
from tests.conftest import SuiteRun, run_suite_forked

CHROMIUM = Path("/usr/bin/chromium")
DEFECT = "rs-dpop-bearer-downgrade"  # fails the MUST DPOP-RS-BEARER-DOWNGRADE
FAILING_REQUIREMENT = "DPOP-RS-BEARER-DOWNGRADE"
FAILING_PROFILE = "dpop"  # the smallest profile: its checks alone take about 3 s
PASSING_REQUIREMENT = "DPOP-SUPPORTED"  # in the failing profile, passed under the defect

SCRIPT_PAYLOAD = "</script><script>alert(1)</script>"
IMG_PAYLOAD = "<img src=x onerror=\"document.title='pwned'\">"
HOSTILE = SCRIPT_PAYLOAD + IMG_PAYLOAD


def hostile_results() -> dict[str, Any]:
    """A schema-valid results document whose every target-written value carries markup."""
    exchange = {
        "method": "POST",
        "url": f"http://127.0.0.1:9/token?x={HOSTILE}",
        "status": 400,
        "request_headers": {"content-type": HOSTILE},
        "request_body": HOSTILE,
        "response_headers": {f"x-{HOSTILE}": HOSTILE},
        "response_body": '{"error": "' + HOSTILE + '"}',
        "error": None,
        "elapsed_ms": 1.5,
        "note": HOSTILE,
    }
    results = {
        "schema_version": 1,
        "suite": {"name": "mcp-auth-conformance", "version": HOSTILE},
        "target": {"url": f"http://127.0.0.1:9/{HOSTILE}", "embedded": False, "defects": []},
        "generated_at": "2026-01-01T00:00:00+00:00",
        "run": {
            "complete": True,
            "interrupted": False,
            "checks_collected": 1,
            "checks_run": 1,
            "note": "",
        },
        "profiles": [
            {
                "name": "hostile",
                "title": HOSTILE,
                "conformant": False,
                "complete": True,
                "counts": {
                    "passed": 0,
                    "failed": 1,
                    "warning": 0,
                    "skipped": 0,
                    "error": 0,
                    "not_run": 0,
                },
                "requirements": [
                    {"id": "RS-X", "level": "MUST", "outcome": "failed", "checks": ["x::check"]}
                ],
            }
        ],
        "requirements": [
            {
                "id": "RS-X",
                "level": "MUST",
                "component": "RS",
                "title": HOSTILE,
                "summary": HOSTILE,
                "note": HOSTILE,
                "versions": [],
                "refs": [{"spec": HOSTILE, "section": "1", "url": "javascript:alert(1)"}],
                "outcome": "failed",
                "reasons": [HOSTILE],
            }
        ],
        "checks": [
            {
                "id": "x::check",
                "title": HOSTILE,
                "requirements": ["RS-X"],
                "statuses": {"RS-X": "violated"},
                "level": "MUST",
                "outcome": "failed",
                "reason": HOSTILE,
                "findings": [{"requirement": "RS-X", "satisfied": False, "message": HOSTILE}],
                "notes": [HOSTILE],
                "evidence": [exchange],
            }
        ],
    }
    jsonschema.validate(results, results_schema())
    return results


class ParsedPage(HTMLParser):
    """What a parser makes of the page: its elements, ids, links, event handlers and text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.classes: Counter[str] = Counter()  # "tag.first-class"
        self.ids: set[str] = set()
        self.hrefs: list[str] = []  # of links
        self.handlers: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        for name, value in attrs:
            if name == "class" and value:
                self.classes[f"{tag}.{value.split()[0]}"] += 1
            elif name == "id" and value:
                self.ids.add(value)
            elif name == "href" and tag == "a" and value is not None:
                self.hrefs.append(value)
            elif name.startswith("on"):
                self.handlers.append(name)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> ParsedPage:
    parsed = ParsedPage()
    parsed.feed(page)
    parsed.close()
    return parsed


# --- no browser ---


def test_markup_in_the_results_stays_text() -> None:
    page = render_html(hostile_results())
    parsed = parse(page)
    assert CONTENT_SECURITY_POLICY in page and parsed.tags["meta"] == 3
    assert HOSTILE not in page and "<img" not in page
    assert parsed.tags["script"] == 1, "only the report's own script"
    assert parsed.tags["img"] == 0 and not parsed.handlers
    assert sum(HOSTILE in text for text in parsed.text) >= 10  # shown as text, everywhere
    assert all(h.startswith(("#", "https://", "http://")) for h in parsed.hrefs), parsed.hrefs
    assert not any(h.startswith("javascript:") for h in parsed.hrefs)


def test_every_check_requirement_and_exchange_is_in_the_page(clean_run: SuiteRun) -> None:
    results = clean_run.results
    parsed = parse((clean_run.report_dir / "report.html").read_text("utf-8"))
    text = "".join(parsed.text)
    assert parsed.classes["section.profile"] == len(results["profiles"])
    assert parsed.classes["article.check"] == len(results["checks"])
    assert parsed.classes["article.requirement"] == len(results["requirements"])
    exchanges = sum(len(c["evidence"]) for c in results["checks"])
    assert parsed.classes["details.exchange"] == exchanges > 1000
    missing = [c["id"] for c in results["checks"] if c["id"] not in text]
    missing += [r["title"] for r in results["requirements"] if r["title"] not in text]
    assert not missing
    rows = sum(len(p["requirements"]) for p in results["profiles"])
    assert parsed.tags["tr"] == rows + len(results["profiles"])  # one header row per table
    broken = {h for h in parsed.hrefs if h.startswith("#") and h[1:] not in parsed.ids}
    assert not broken


def test_incomplete_run_is_certified_by_no_banner() -> None:
    """A failure found before the run stopped still stands; otherwise the banner says
    INCOMPLETE, never CONFORMANT."""
    results = hostile_results()
    results["run"].update(complete=False, checks_run=1, note="interrupted: 1 of 2 checks ran")
    jsonschema.validate(results, results_schema())
    page = render_html(results)
    assert '<div class="banner v-not-conformant" role=status>NOT CONFORMANT</div>' in page
    assert "interrupted: 1 of 2 checks ran" in page
    (profile,) = results["profiles"]
    profile["counts"].update(failed=0, not_run=profile["counts"]["not_run"] + 1)
    page = render_html(results)
    assert '<div class="banner v-incomplete" role=status>INCOMPLETE</div>' in page
    assert "CONFORMANT" not in page


# --- in Chromium ---


@dataclass
class Watched:
    """A page, and everything it did that a test must see: console, errors, requests."""

    page: Page
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def section(self, profile: str) -> Locator:
        return self.page.locator(f'section.profile[id="profile-{profile}"]')

    def banner(self, profile: str) -> Locator:
        return self.section(profile).locator(".banner")

    def open_tab(self, profile: str) -> None:
        self.page.locator(f'nav.tabs a.tab[href="#profile-{profile}"]').click()


def _keep_on_the_machine(route: Route) -> None:
    """Only the report file loads; anything else is refused before it is sent."""
    if route.request.url.startswith("file:"):
        route.continue_()
    else:
        route.abort()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the HTML report is tested in Debian's Chromium; "
            "install it with `apt-get install chromium` (`make test` does)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Watched]]:
    contexts = []

    def open_(path: Path, javascript: bool = True) -> Watched:
        context = browser.new_context(
            java_script_enabled=javascript, viewport={"width": 1280, "height": 900}
        )
        contexts.append(context)
        context.route("**/*", _keep_on_the_machine)
        watched = Watched(context.new_page())
        watched.page.on("console", lambda m: watched.console.append(f"{m.type}: {m.text}"))
        watched.page.on("pageerror", lambda e: watched.errors.append(str(e)))
        watched.page.on("request", lambda r: watched.requests.append(r.url))
        watched.page.on("dialog", lambda d: (watched.dialogs.append(d.message), d.dismiss()))
        watched.page.goto(path.as_uri())
        return watched

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def defect_run(tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    run = run_suite_forked(
        tmp_path_factory.mktemp("html-defect"),
        "--target",
        "embedded",
        "--profile",
        FAILING_PROFILE,
        "--fuzz-examples",
        "6",
        "--defect",
        DEFECT,
    )
    outcomes = run.requirement_outcomes()
    assert outcomes[FAILING_REQUIREMENT] == "failed", run.stdout[-2000:]
    assert outcomes[PASSING_REQUIREMENT] == "passed", run.stdout[-2000:]
    return run


def dominant_colour(png: bytes) -> tuple[int, int, int]:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(image.width * image.height) or []
    _, colour = max(colours)
    return colour


def looks_red(colour: tuple[int, int, int]) -> bool:
    red, green, blue = colour
    return red >= 150 and green <= 90 and blue <= 90


def looks_green(colour: tuple[int, int, int]) -> bool:
    red, green, blue = colour
    return green >= 100 and green > red + 40 and green > blue + 40


def test_clean_report_says_conformant_on_every_tab(
    clean_run: SuiteRun, open_page: Callable[..., Watched], tmp_path: Path
) -> None:
    watched = open_page(clean_run.report_dir / "report.html")
    page = watched.page
    profiles = [p["name"] for p in clean_run.results["profiles"]]
    assert len(profiles) > 1 and FAILING_PROFILE in profiles
    for name in profiles:
        watched.open_tab(name)
        assert page.locator("section.profile:visible").count() == 1, "tabs, not stacked"
        banner = watched.banner(name)
        assert banner.is_visible() and banner.inner_text().strip() == "CONFORMANT", name
        if name == FAILING_PROFILE:  # the banner the defective run turns red
            green = dominant_colour(banner.screenshot(path=tmp_path / "clean-banner.png"))
            assert looks_green(green), green
            assert not looks_red(green), "the red check would pass a green banner"
    assert not watched.errors
    assert not [m for m in watched.console if m.startswith(("error", "warning"))], watched.console
    assert watched.requests == [(clean_run.report_dir / "report.html").as_uri()]


def test_request_listener_sees_a_fetch(tmp_path: Path, open_page: Callable[..., Watched]) -> None:
    """The listener the clean report passes is not blind: a page that fetches is caught."""
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><p>control</p><img src="http://127.0.0.1:9/probe.png">')
    watched = open_page(control)
    assert watched.requests == [control.as_uri(), "http://127.0.0.1:9/probe.png"]


def test_failing_profile_banner_is_red(
    defect_run: SuiteRun, open_page: Callable[..., Watched], tmp_path: Path
) -> None:
    watched = open_page(defect_run.report_dir / "report.html")
    failing = watched.banner(FAILING_PROFILE)
    assert failing.inner_text().strip() == "NOT CONFORMANT"
    red = dominant_colour(failing.screenshot(path=tmp_path / "failing-banner.png"))
    assert looks_red(red) and not looks_green(red), red
    assert not watched.errors and not [m for m in watched.console if m.startswith("error")]


def test_filtering_on_failed_hides_what_passed(
    defect_run: SuiteRun, open_page: Callable[..., Watched]
) -> None:
    watched = open_page(defect_run.report_dir / "report.html")
    page = watched.page
    table = watched.section(FAILING_PROFILE).locator("table.requirements")

    def row(rid: str) -> Locator:
        return table.locator("tbody tr").filter(has=page.get_by_role("link", name=rid, exact=True))

    failing_row, passing_row = row(FAILING_REQUIREMENT), row(PASSING_REQUIREMENT)
    assert failing_row.is_visible() and passing_row.is_visible()

    page.select_option("select[name=outcome]", "failed")
    assert failing_row.is_visible() and "failed" in failing_row.inner_text()
    assert not passing_row.is_visible()
    assert table.locator("tbody tr:visible").count() == 1
    failed_checks = [c for c in defect_run.results["checks"] if c["outcome"] == "failed"]
    assert page.locator("article.check:visible").count() == len(failed_checks) >= 1

    page.select_option("select[name=outcome]", "")
    assert passing_row.is_visible()


def test_expanding_an_exchange_shows_the_request(
    defect_run: SuiteRun, open_page: Callable[..., Watched]
) -> None:
    check = next(c for c in defect_run.results["checks"] if c["outcome"] == "failed")
    exchange = check["evidence"][0]
    page = open_page(defect_run.report_dir / "report.html").page
    article = page.locator("article.check", has_text=check["id"])
    article.scroll_into_view_if_needed()
    assert FAILING_REQUIREMENT in article.locator(".root-cause").inner_text()
    details = article.locator("details.exchange").first
    request_line = details.locator(".request-line")
    status_line = details.locator(".status-line")
    assert not request_line.is_visible() and not status_line.is_visible()

    details.locator("summary").click()
    assert request_line.is_visible()
    assert request_line.inner_text() == f"{exchange['method']} {exchange['url']}"
    assert status_line.inner_text().startswith(f"HTTP {exchange['status']}")


def test_markup_from_the_target_runs_nothing(
    tmp_path: Path, open_page: Callable[..., Watched]
) -> None:
    report = tmp_path / "report.html"
    report.write_text(render_html(hostile_results()), "utf-8")
    watched = open_page(report)
    page = watched.page
    for summary in page.locator("details.exchange summary").all():
        summary.click()
    body = page.locator("article.check pre.body").first
    assert body.is_visible() and HOSTILE in body.inner_text()
    assert page.locator("img").count() == 0 and page.locator("script").count() == 1
    assert page.title() != "pwned" and not watched.dialogs
    assert not watched.errors and not [m for m in watched.console if m.startswith("error")]
    assert watched.requests == [report.as_uri()]


def test_without_javascript_every_profile_is_stacked(
    clean_run: SuiteRun, open_page: Callable[..., Watched]
) -> None:
    watched = open_page(clean_run.report_dir / "report.html", javascript=False)
    page = watched.page
    profiles = clean_run.results["profiles"]
    assert page.locator("section.profile:visible").count() == len(profiles)
    for profile in profiles:
        section = watched.section(profile["name"])
        assert section.locator(".banner").inner_text().strip() == "CONFORMANT"
        rows = section.locator("table.requirements tbody tr:visible")
        assert rows.count() == len(profile["requirements"])
    assert not page.locator("form.filters").is_visible()

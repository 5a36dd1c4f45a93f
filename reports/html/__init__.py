"""report.html: the whole run in one self-contained page, for a person to read and file.

A tab per profile (verdict banner, counts, its requirements with spec links and reasons), then
every check with its root cause, findings and redacted HTTP exchanges, then every requirement's
text. Styles and script are inline and the page forbids every fetch (Content-Security-Policy);
with JavaScript off, the tabs are stacked sections and the filters are hidden.

Everything in results.json is attacker-influenced (a hostile target writes the response bodies
the evidence keeps), so every value is HTML-escaped and the script reads no data but the
page's own attributes.
"""

from __future__ import annotations

import re
from functools import cache
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from conformance.catalogue import LEVELS
from reports import OUTCOMES
from reports.certificate import VERDICT_WORDS, verdict

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
)
# Problems first in the list of checks; the order a reader triages them.
_CHECK_ORDER = ("failed", "warning", "error", "skipped", "not_run", "passed")
_NOT_PASSED = "not-passed"  # the outcome filter's value for "anything but passed"


@cache
def _asset(name: str) -> str:
    return resources.files("reports.html").joinpath(name).read_text("utf-8")


def render_html(results: dict[str, Any]) -> str:
    anchors = _Anchors(results)
    requirements = {r["id"]: r for r in results["requirements"]}
    checks = {c["id"]: c for c in results["checks"]}
    components = sorted({r["component"] for r in results["requirements"]})
    title = f"MCP authorization conformance: {results['target']['url']}"
    parts = [
        "<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n",
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n',
        '<meta name=viewport content="width=device-width, initial-scale=1">\n',
        '<link rel=icon href="data:,">\n',
        f"<title>{escape(title)}</title>\n<style>\n{_asset('report.css')}</style>\n</head>\n",
        "<body>\n",
        _run_header(results),
        _tabs(results, anchors),
        _filters(components),
        "<main>\n",
    ]
    for profile in results["profiles"]:
        parts.append(_profile_section(profile, results, requirements, checks, anchors))
    parts.append(_checks_section(results["checks"], requirements, anchors))
    parts.append(_requirements_section(results, anchors))
    parts.append(f"</main>\n<script>\n{_asset('report.js')}</script>\n</body>\n</html>\n")
    return "".join(parts)


class _Anchors:
    """Fragment ids for profiles, requirements and checks: readable, unique, attribute-safe."""

    def __init__(self, results: dict[str, Any]) -> None:
        used: set[str] = set()
        self.profile = {
            p["name"]: _unique("profile-", p["name"], used) for p in results["profiles"]
        }
        self.requirement = {
            r["id"]: _unique("req-", r["id"], used) for r in results["requirements"]
        }
        self.check = {c["id"]: _unique("check-", c["id"], used) for c in results["checks"]}

    def requirement_link(self, rid: str) -> str:
        anchor = self.requirement.get(rid)
        text = f"<code>{escape(rid)}</code>"
        return f'<a href="#{anchor}">{text}</a>' if anchor else text

    def check_link(self, cid: str) -> str:
        anchor = self.check.get(cid)
        text = escape(cid.rpartition("::")[2] or cid)
        return f'<a href="#{anchor}" title="{escape(cid)}">{text}</a>' if anchor else text


def _unique(prefix: str, name: str, used: set[str]) -> str:
    slug = prefix + (re.sub(r"[^A-Za-z0-9_.:/-]+", "-", name) or "-")
    anchor, n = slug, 1
    while anchor in used:
        n += 1
        anchor = f"{slug}~{n}"
    used.add(anchor)
    return anchor


def _outcome_class(outcome: str) -> str:
    return outcome if outcome in OUTCOMES else "unknown"


def _badge(outcome: str) -> str:
    return f'<span class="badge o-{_outcome_class(outcome)}">{escape(outcome)}</span>'


def _verdict(profile: dict[str, Any]) -> tuple[str, str]:
    """The banner's words and its class: the certificate's verdict."""
    judged = verdict(profile)
    return VERDICT_WORDS[judged], judged.replace("_", "-")


def _spec_link(ref: dict[str, Any]) -> str:
    section = str(ref.get("section", ""))
    where = f" §{section}" if re.match(r"[A-Z]?\d", section) else f", {section}" if section else ""
    text = escape(f"{ref.get('spec', '')}{where}")
    url = str(ref.get("url", ""))
    # Only web links: a javascript: or data: URL must not become clickable.
    if not url.startswith(("https://", "http://")):
        return text
    return f'<a href="{escape(url)}" rel="noreferrer">{text}</a>'


def _run_header(results: dict[str, Any]) -> str:
    target, run, suite = results["target"], results["run"], results["suite"]
    embedded = " (embedded reference)" if target["embedded"] else ""
    rows = [
        ("Target", f"<code>{escape(str(target['url']))}</code>{escape(embedded)}"),
        ("Suite", escape(f"{suite['name']} {suite['version']}")),
        ("Generated", escape(str(results["generated_at"]))),
        ("Checks run", escape(f"{run['checks_run']} of {run['checks_collected']}")),
    ]
    if target["defects"]:
        defects = ", ".join(f"<code>{escape(d)}</code>" for d in target["defects"])
        rows.append(("Defects switched on", defects))
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    parts = [
        "<header class=run>\n<h1>MCP authorization conformance</h1>\n",
        f"<dl class=run-facts>{items}</dl>\n",
    ]
    if not run["complete"]:
        parts.append(
            f"<p class=run-incomplete><strong>Incomplete run</strong> ({escape(run['note'])}): "
            "no profile is certified.</p>\n"
        )
    parts.append("</header>\n")
    return "".join(parts)


def _tabs(results: dict[str, Any], anchors: _Anchors) -> str:
    links = []
    for profile in results["profiles"]:
        words, verdict_class = _verdict(profile)
        links.append(
            f'<a class="tab v-{verdict_class}" href="#{anchors.profile[profile["name"]]}">'
            f"{escape(profile['name'])} <span class=tab-verdict>{words}</span></a>"
        )
    return f"<nav class=tabs aria-label=Profiles>{''.join(links)}</nav>\n"


def _options(values: list[tuple[str, str]]) -> str:
    return "".join(f'<option value="{escape(v)}">{escape(label)}</option>' for v, label in values)


def _filters(components: list[str]) -> str:
    """Hidden until the script shows it: without JavaScript, a filter would do nothing."""
    outcome = [("", "any"), (_NOT_PASSED, "not passed")] + [(o, o) for o in OUTCOMES]
    component = [("", "any")] + [(c, c) for c in components]
    level = [("", "any")] + [(lv, lv) for lv in LEVELS]
    return (
        "<form class=filters id=filters hidden>\n"
        f"<label>Outcome <select name=outcome>{_options(outcome)}</select></label>\n"
        f"<label>Component <select name=component>{_options(component)}</select></label>\n"
        f"<label>Level <select name=level>{_options(level)}</select></label>\n"
        "<output name=shown></output>\n</form>\n"
    )


def _filter_attributes(outcome: str, level: str, components: list[str]) -> str:
    joined = "|" + "|".join(components) + "|"
    return (
        f'data-outcome="{escape(outcome)}" data-level="{escape(level)}" '
        f'data-components="{escape(joined)}"'
    )


def _profile_section(
    profile: dict[str, Any],
    results: dict[str, Any],
    requirements: dict[str, dict[str, Any]],
    checks: dict[str, dict[str, Any]],
    anchors: _Anchors,
) -> str:
    words, verdict_class = _verdict(profile)
    counts = "".join(
        f"<li class=o-{_outcome_class(o)}>{escape(o)} <b>{int(n)}</b></li>"
        for o, n in profile["counts"].items()
    )
    rows = [_requirement_row(row, requirements, checks, anchors) for row in profile["requirements"]]
    return (
        f'<section class=profile id="{anchors.profile[profile["name"]]}">\n'
        f"<h2>{escape(profile['name'])}</h2>\n"
        f'<div class="banner v-{verdict_class}" role=status>{words}</div>\n'
        f"<p class=profile-title>{escape(profile['title'])}</p>\n"
        f"<ul class=counts>{counts}</ul>\n"
        "<table class=requirements>\n<thead><tr><th>Requirement</th><th>Level</th>"
        "<th>Component</th><th>Outcome</th><th>Spec</th><th>Reason</th><th>Checks</th></tr>"
        f"</thead>\n<tbody>\n{''.join(rows)}</tbody>\n</table>\n</section>\n"
    )


def _requirement_row(
    row: dict[str, Any],
    requirements: dict[str, dict[str, Any]],
    checks: dict[str, dict[str, Any]],
    anchors: _Anchors,
) -> str:
    requirement = requirements.get(row["id"], {})
    component = str(requirement.get("component", ""))
    refs = "<br>".join(_spec_link(ref) for ref in requirement.get("refs", []))
    reasons = _row_reasons(row, requirement, checks)
    reason = "".join(f"<p>{escape(r)}</p>" for r in reasons)
    linked = ", ".join(anchors.check_link(c) for c in row["checks"])
    attributes = _filter_attributes(row["outcome"], row["level"], [component])
    return (
        f"<tr class=o-{_outcome_class(row['outcome'])} {attributes}>"
        f"<td>{anchors.requirement_link(row['id'])}</td><td>{escape(row['level'])}</td>"
        f"<td>{escape(component)}</td><td>{_badge(row['outcome'])}</td><td>{refs}</td>"
        f"<td class=reason>{reason}</td><td class=row-checks>{linked}</td></tr>\n"
    )


def _row_reasons(
    row: dict[str, Any], requirement: dict[str, Any], checks: dict[str, dict[str, Any]]
) -> list[str]:
    """What the findings said about the requirement, then the root cause of each check that
    proves it and did not pass, unless it only repeats those findings."""
    reasons = list(requirement.get("reasons", []))
    for cid in row["checks"]:
        check = checks.get(cid)
        if not check or check["outcome"] == "passed" or not check["reason"]:
            continue
        if not any(said in check["reason"] for said in reasons):
            reasons.append(check["reason"])
    if not reasons and row["outcome"] == "not_run":
        reasons.append("no check ran")
    return list(dict.fromkeys(reasons))


def _checks_section(
    checks: list[dict[str, Any]], requirements: dict[str, dict[str, Any]], anchors: _Anchors
) -> str:
    order = {o: i for i, o in enumerate(_CHECK_ORDER)}
    ordered = sorted(checks, key=lambda c: (order.get(c["outcome"], -1), c["id"]))
    parts = ["<section class=checks id=checks>\n<h2>Checks</h2>\n"]
    parts += [_check(check, requirements, anchors) for check in ordered]
    parts.append("</section>\n")
    return "".join(parts)


def _check(
    check: dict[str, Any], requirements: dict[str, dict[str, Any]], anchors: _Anchors
) -> str:
    outcome = check["outcome"]
    components = sorted(
        {str(requirements[r]["component"]) for r in check["requirements"] if r in requirements}
    )
    statuses = check.get("statuses", {})
    proves = ", ".join(
        anchors.requirement_link(rid)
        + (f" <small>{escape(statuses[rid])}</small>" if rid in statuses else "")
        for rid in check["requirements"]
    )
    parts = [
        f'<article class="check o-{_outcome_class(outcome)}" id="{anchors.check[check["id"]]}" '
        f"{_filter_attributes(outcome, check['level'], components)}>\n",
        f"<h3>{_badge(outcome)} {escape(check.get('title') or check['id'])}</h3>\n",
        f"<p class=check-id><code>{escape(check['id'])}</code> · {escape(check['level'])}</p>\n",
    ]
    if check["reason"]:
        cls = "root-cause" if outcome != "passed" else "check-reason"
        label = "Root cause" if outcome != "passed" else "Reason"
        parts.append(f"<p class={cls}><strong>{label}:</strong> {escape(check['reason'])}</p>\n")
    parts.append(f"<p class=proves>Proves: {proves}</p>\n")
    findings = check.get("findings", [])
    if findings:
        parts.append("<ul class=findings>")
        parts += [_finding(f, anchors) for f in findings]
        parts.append("</ul>\n")
    notes = check.get("notes", [])
    if notes:
        parts.append("<ul class=notes>")
        parts += [f"<li>{escape(str(n))}</li>" for n in notes]
        parts.append("</ul>\n")
    evidence = check["evidence"]
    for n, exchange in enumerate(evidence, 1):
        parts.append(_exchange(n, len(evidence), exchange))
    parts.append("</article>\n")
    return "".join(parts)


def _finding(finding: dict[str, Any], anchors: _Anchors) -> str:
    if not finding.get("satisfied"):
        cls, mark = "violated", "✗"
    elif finding.get("tolerated"):
        cls, mark = "tolerated", "≈"
    else:
        cls, mark = "satisfied", "✓"
    return (
        f"<li class={cls}><span class=mark>{mark}</span> "
        f"{anchors.requirement_link(str(finding.get('requirement', '')))}: "
        f"{escape(str(finding.get('message', '')))}</li>"
    )


def _headers(headers: Any) -> str:
    if not isinstance(headers, dict) or not headers:
        return ""
    lines = "\n".join(f"{name}: {value}" for name, value in headers.items())
    return f"<pre class=headers>{escape(lines)}</pre>"


def _body(body: Any) -> str:
    return f"<pre class=body>{escape(str(body))}</pre>" if body else ""


def _exchange(n: int, total: int, exchange: dict[str, Any]) -> str:
    method, url, status = str(exchange["method"]), str(exchange["url"]), exchange["status"]
    error = exchange.get("error")
    answer = str(status) if status is not None else "no answer"
    try:
        path = urlsplit(url).path or "/"
    except ValueError:
        path = url
    note = exchange.get("note")
    elapsed = exchange.get("elapsed_ms")
    timing = f" · {elapsed} ms" if elapsed is not None else ""
    summary = f"{n}/{total} {method} {path} → {answer}"
    status_line = f"HTTP {status}" if status is not None else "no answer"
    return (
        "<details class=exchange><summary>"
        f"{escape(summary)}"
        + (f" <span class=exchange-note>{escape(str(note))}</span>" if note else "")
        + "</summary>\n<div class=http>"
        f"<pre class=request-line>{escape(f'{method} {url}')}</pre>"
        f"{_headers(exchange.get('request_headers'))}{_body(exchange.get('request_body'))}"
        f"<pre class=status-line>{escape(status_line + timing)}</pre>"
        + (f"<p class=exchange-error>Error: {escape(str(error))}</p>" if error else "")
        + f"{_headers(exchange.get('response_headers'))}{_body(exchange.get('response_body'))}"
        + (f"<p class=exchange-note>Note: {escape(str(note))}</p>" if note else "")
        + "</div></details>\n"
    )


def _requirements_section(results: dict[str, Any], anchors: _Anchors) -> str:
    proven_by: dict[str, list[str]] = {}
    for check in results["checks"]:
        for rid in check["requirements"]:
            proven_by.setdefault(rid, []).append(check["id"])
    parts = ["<section class=catalogue id=requirements>\n<h2>Requirements</h2>\n"]
    for requirement in results["requirements"]:
        rid = requirement["id"]
        refs = "".join(f"<li>{_spec_link(ref)}</li>" for ref in requirement["refs"])
        versions = ", ".join(requirement.get("versions", []))
        facts = f"{requirement['level']} · {requirement['component']}" + (
            f" · MCP {versions}" if versions else ""
        )
        checks = ", ".join(anchors.check_link(c) for c in proven_by.get(rid, []))
        parts += [
            f'<article class=requirement id="{anchors.requirement[rid]}">\n',
            f"<h3><code>{escape(rid)}</code> {escape(requirement['title'])}</h3>\n",
            f"<p class=facts>{_badge(requirement['outcome'])} {escape(facts)}</p>\n",
            f"<p>{escape(requirement['summary'])}</p>\n",
        ]
        if requirement.get("note"):
            parts.append(f"<p class=note>{escape(requirement['note'])}</p>\n")
        parts.append(f"<ul class=refs>{refs}</ul>\n")
        if checks:
            parts.append(f"<p class=proven-by>Checked by: {checks}</p>\n")
        parts.append("</article>\n")
    parts.append("</section>\n")
    return "".join(parts)

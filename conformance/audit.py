"""The deployment's audit trail of second-hop events, read from where the target config says.

An event is a JSON object with at least `event` ("token_exchange" or "downstream_call"),
`user`, `client_id`, `service`, `scopes`, `time` and `outcome` ("success" or "failure").
A URL source answers `GET url?since=N` with `{"events": [...], "last": M}` (or a plain JSON
array); a file source holds one event per line (JSON lines).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from conformance.config import AuditConfig
from conformance.discovery import json_object
from conformance.errors import PreconditionFailed
from conformance.http import Http

Event = dict[str, Any]


class AuditTrail:
    def __init__(self, http: Http, config: AuditConfig) -> None:
        self.http = http
        self.config = config

    def _get(self, since: int, note: str) -> tuple[list[Event], int]:
        assert self.config.url
        separator = "&" if "?" in self.config.url else "?"
        headers = []
        if self.config.bearer_token:
            headers.append(("Authorization", f"Bearer {self.config.bearer_token}"))
        response = self.http.get(
            f"{self.config.url}{separator}{urlencode({'since': since})}", headers=headers, note=note
        )
        if response.status_code != 200:
            raise PreconditionFailed(f"the audit trail answered {response.status_code}")
        body = json_object(response)
        if body is not None and isinstance(body.get("events"), list):
            events = [e for e in body["events"] if isinstance(e, dict)]
            last = body.get("last")
            return events, int(last) if isinstance(last, int) else since + len(events)
        try:
            listed = response.json()
        except ValueError:
            listed = None
        if not isinstance(listed, list):
            raise PreconditionFailed("the audit trail is neither {events: [...]} nor a JSON array")
        events = [e for e in listed if isinstance(e, dict)]
        return events[since:], len(events)

    def _lines(self) -> list[Event]:
        assert self.config.file
        path = Path(self.config.file)
        if not path.is_file():
            raise PreconditionFailed(f"audit file {path} does not exist")
        events = []
        for line in path.read_text("utf-8").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def cursor(self) -> int:
        """A position after every event recorded so far."""
        if self.config.url:
            return self._get(0, "audit trail: current position")[1]
        return len(self._lines())

    def since(self, cursor: int) -> list[Event]:
        """Events recorded after `cursor`."""
        if self.config.url:
            return self._get(cursor, "audit trail: new events")[0]
        return self._lines()[cursor:]

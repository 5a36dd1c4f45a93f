"""Per-user data of the mock APIs, shaped like the real ones and generated from the `sub`.

Any user has data (so a vendor's own test users work), the same on every run, and every
item carries an id derived from a hash of its owner's `sub` plus an `owner` field, so the
suite can tell from a response or a record whose data was served.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from mock_saas.settings import SaasSettings

BUILT_IN_USERS = ("alice", "bob")
"""Always in an integration user's view, so a shared key visibly leaks other users' data."""

_DISPLAY_NAMES = {"alice": "Alice Example", "bob": "Bob Example"}  # as the mock IdP has them
_ACCOUNTS = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell")
_PRODUCTS = ("Renewal", "Expansion", "Platform Deal", "Pilot", "Support Upgrade")
_STAGES = ("Prospecting", "Qualification", "Proposal/Price Quote", "Negotiation/Review")
_TITLES = ("Software Engineer", "Account Executive", "Financial Analyst", "HR Partner")


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()


def _pick(options: tuple[str, ...], digest: bytes, byte: int) -> str:
    return options[digest[byte] % len(options)]


def opportunities(settings: SaasSettings, sub: str) -> list[dict[str, Any]]:
    """The user's Salesforce Opportunity sObjects (2 or 3), `OwnerId` = the user's sub."""
    count = 2 + _digest("salesforce", sub)[0] % 2
    items = []
    for n in range(count):
        digest = _digest("salesforce", sub, str(n))
        # Salesforce ids: key prefix 006 (Opportunity) + 15 characters.
        record_id = "006" + base64.b32encode(digest).decode("ascii")[:15]
        items.append(
            {
                "attributes": {
                    "type": "Opportunity",
                    "url": f"{settings.service.api_path}/{record_id}",
                },
                "Id": record_id,
                "Name": f"{_pick(_ACCOUNTS, digest, 1)} {_pick(_PRODUCTS, digest, 2)} ({sub})",
                "StageName": _pick(_STAGES, digest, 3),
                "Amount": float(5000 + 1000 * (int.from_bytes(digest[4:6], "big") % 95)),
                "OwnerId": sub,
            }
        )
    return items


def worker(settings: SaasSettings, sub: str) -> dict[str, Any]:
    """The user's Workday worker object, `owner` = the user's sub."""
    digest = _digest("workday", sub)
    worker_id = digest[:16].hex()  # Workday ids (WIDs) are 32 hex digits
    return {
        "id": worker_id,
        "descriptor": _DISPLAY_NAMES.get(sub, sub),
        "href": f"{settings.base_url}{settings.service.resource_path}/staffing/v6/acme/workers/"
        f"{worker_id}",
        "workerId": str(21000 + int.from_bytes(digest[16:18], "big") % 9000),
        "primaryWorkEmail": sub if "@" in sub else f"{sub}@acme.example",
        "businessTitle": _pick(_TITLES, digest, 18),
        "isManager": bool(digest[19] % 2),
        "owner": sub,
    }


def body_for(settings: SaasSettings, users: list[str], integration: bool) -> dict[str, Any]:
    """The API response for one user, or for the integration user who sees `users`."""
    if settings.kind == "salesforce":
        records = [item for sub in users for item in opportunities(settings, sub)]
        return {"totalSize": len(records), "done": True, "records": records}
    if integration:  # a workers collection, as GET .../workers answers it
        workers = [worker(settings, sub) for sub in users]
        return {"total": len(workers), "data": workers}
    return worker(settings, users[0])


def returned_items(body: dict[str, Any]) -> list[dict[str, str]]:
    """`[{"id", "owner"}]` for every item of an API response body."""
    if "records" in body:
        return [{"id": r["Id"], "owner": r["OwnerId"]} for r in body["records"]]
    items = body.get("data", [body])
    return [{"id": w["id"], "owner": w["owner"]} for w in items]

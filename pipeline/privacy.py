"""Pseudonymous user ids in alerts.

Alerts (findings) go to a wide audience and are kept for years, so the accounts they name are replaced
by a keyed HMAC-SHA256 of the id: stable (one account is one pseudonym in every alert, so a reviewer
can follow it) and not reversible without the key (a plain hash of an id is: ids are few enough to
enumerate). Actions keep the real id — the platform needs it to mute the account — and link to their
alerts by finding id. Set the key with LIVEWATCH_PSEUDONYM_KEY; rotate it and pseudonyms change.
"""

from __future__ import annotations

import hashlib
import hmac

from schemas.findings import Finding

#: used when no key is configured: fine for demos and replays, never for production (the worker warns)
DEV_KEY = "livewatch-dev-key-not-secret"


class Pseudonymizer:
    def __init__(self, key: str | bytes) -> None:
        self._key = key.encode("utf-8") if isinstance(key, str) else key

    def user(self, user_id: str) -> str:
        return "u_" + hmac.new(self._key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:24]

    def finding(self, finding: Finding) -> Finding:
        """The finding as an alert: account subjects and account lists pseudonymised."""
        update: dict[str, object] = {}
        if finding.subject.kind == "account":
            update["subject"] = finding.subject.model_copy(update={"id": self.user(finding.subject.id)})
        accounts = finding.details.get("account_ids")
        if isinstance(accounts, list):
            update["details"] = {**finding.details, "account_ids": [self.user(str(a)) for a in accounts]}
        return finding.model_copy(update=update) if update else finding

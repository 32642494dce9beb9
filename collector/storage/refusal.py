"""What a refused write means, read from the status and the server's body, and how to fix it.

Only a refusal of specific points that can never be accepted is quarantined. The bodies, as
InfluxDB 1.6 answers them here (and InfluxDB 2's documented ones):

- 400 ``{"error":"partial write: field type conflict: input field \\"x\\" on measurement ...
  dropped=1"}``, 400 ``{"error":"field type conflict"}`` (the conflict is inside the batch),
  400 ``{"error":"partial write: unable to parse 'host x= 2000': missing field value
  dropped=0"}``; 2.x: 400 ``unable to parse`` and 422 ``{"code":"unprocessable entity",
  "message":"failure writing points to database: partial write: ..."}``;
- ``partial write: points beyond retention policy dropped=N`` (2.x: ``outside retention
  policy``): too old for the retention policy, forever.

Everything else means "not stored" and is retried: 404 ``database not found`` (2.x: ``bucket
"x" not found``), 401/403, 500 ``retention policy not found``, ``partial write: max-values-per-tag
limit exceeded`` / ``max series per database exceeded`` (a limit an admin can raise), other 4xx,
5xx, no answer. 413 means the request is too big, not the points bad: split.
VictoriaMetrics answers 204 even to lines it cannot parse (it logs and skips them); the only
refusals it sends a writer are 401 (``-httpAuth.*``) and 4xx/5xx of a broken request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from collector.storage import Action, StorageError

# Body fragments (lower case) of refusals that concern the points themselves.
_POINT_CAUSES: Final = (
    ("field type conflict", "field_type_conflict"),
    ("unable to parse", "unparsable"),
    ("beyond retention policy", "beyond_retention"),
    ("outside retention policy", "beyond_retention"),
)
# Partial writes that are limits of the server, not faults of the points: retried.
_LIMITS: Final = ("max-values-per-tag", "max-series-per-database", "max series per database",
                  "series cardinality")


def classify(status: int | None, body: str) -> tuple[str, Action]:
    """The cause name and the action for a failed write."""
    text = body.lower()
    if status is None:
        return "unreachable", "retry"
    if status in (400, 422) and not any(limit in text for limit in _LIMITS):
        for fragment, cause in _POINT_CAUSES:
            if fragment in text:
                return cause, "quarantine"
    if status == 413:
        return "too_large", "split"
    if status == 404:
        for fragment, cause in (("database not found", "database_missing"),
                                ("bucket", "bucket_missing"), ("organization", "org_missing")):
            if fragment in text:
                return cause, "retry"
        return "not_found", "retry"
    if status == 401:
        return "auth", "retry"
    if status == 403:
        return "forbidden", "retry"
    if status == 429:
        return "rate_limited", "retry"
    if "retention policy not found" in text:
        return "retention_policy_missing", "retry"
    if any(limit in text for limit in _LIMITS):
        return "limit", "retry"
    return ("server_error" if status >= 500 else "refused"), "retry"


@dataclass(frozen=True)
class Target:
    """Where a writer writes, to say in one line what is wrong and what to change."""

    product: str  # "InfluxDB", "InfluxDB 2 / VictoriaMetrics"
    url: str
    container: str  # database or bucket name
    container_key: str  # "storage.database" / "storage.bucket"
    create: str  # how to create the container
    credentials: str  # the settings that hold the credentials
    user: str | None = None


def server_message(body: str) -> str:
    """The server's words: ``error`` (1.x) or ``message`` (2.x) of a JSON body, else the text."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    if isinstance(data, dict):
        for key in ("error", "message"):
            if isinstance(data.get(key), str):
                return str(data[key])[:300]
    return body.strip()[:300]


def explain(cause: str, status: int | None, body: str, target: Target) -> str:
    """One line naming the cause and the fix."""
    at = f"{target.product} at {target.url}"
    said = server_message(body)
    fixes = {
        "database_missing": f"{target.product} says database '{target.container}' does not exist: "
                            f"create it ({target.create}) or fix {target.container_key} in "
                            "collector.yaml",
        "bucket_missing": f"{at} says bucket '{target.container}' does not exist ({said}): create "
                          f"it ({target.create}) or fix {target.container_key} in collector.yaml",
        "org_missing": f"{at} does not know the organization ({said}): fix storage.org in "
                       "collector.yaml",
        "auth": f"{target.product} refused the credentials (401): check {target.credentials} in "
                "collector.yaml",
        "forbidden": f"{at}: user '{target.user or '?'}' may not write to '{target.container}' "
                     f"(403): grant it WRITE on the database or use another user",
        "retention_policy_missing": f"{at}: {said}: create it or fix "
                                    "storage.retention_policy in collector.yaml",
        "limit": f"{at} refuses new series ({said}): raise the limit in its configuration "
                 "or drop unused series",
        "not_found": f"{at} answered 404 ({said}): check storage.url and storage.kind in "
                     "collector.yaml",
        "rate_limited": f"{at} asks the collector to slow down (429): retrying as told",
        "server_error": f"{at} failed ({status}: {said}): see its log; retrying",
        "refused": f"{at} refused the write ({status}: {said})",
        "too_large": f"{at} says the request is too large (413): sending it in smaller parts",
    }
    return fixes.get(cause, f"{at} refused points ({cause}, {status}): {said}")


def error_for(status: int, body: str, target: Target,
              retry_after: float | None = None) -> StorageError:
    """The StorageError for an HTTP answer that is not a success."""
    cause, action = classify(status, body)
    return StorageError(explain(cause, status, body, target), status=status,
                        retry_after=retry_after, cause=cause, action=action)


def unreachable(target: Target, exc: BaseException) -> StorageError:
    """The StorageError for a write that got no answer (refused, reset, timed out)."""
    return StorageError(f"{target.product} at {target.url} is unreachable ({exc}): is it "
                        "running? check storage.url in collector.yaml",
                        cause="unreachable", action="retry")

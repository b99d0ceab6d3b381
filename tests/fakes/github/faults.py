"""Scripted faults (5xx, rate limits, delays, dropped connections, writes that land and then
fail) and the record of every request, so a test asserts on what the server saw."""

from __future__ import annotations

import time
from collections.abc import Mapping

from tests.fakes.github.base import FakeBase
from tests.fakes.github.state import (
    DOCS,
    PRIMARY_RATE_LIMIT_MESSAGE,
    SECONDARY_RATE_LIMIT_MESSAGE,
    Fault,
    Json,
    PathPattern,
    RecordedRequest,
    _default_message,
)


class FaultsMixin(FakeBase):
    # ---- faults ------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path: PathPattern,
        status: int | None = 500,
        *,
        times: int = 1,
        land: bool = False,
        body: Json = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        disconnect: bool = False,
        retry_after: float | None = None,
    ) -> Fault:
        """Make the next ``times`` requests matching ``method`` ("*" for any) and ``path`` fail.

        ``path`` matches the route (path without ``/api/v3`` and query) when equal to it or a
        suffix of it — ``"/pulls/7/reviews"`` matches ``/repos/o/r/pulls/7/reviews`` but not
        ``.../reviews/5/comments`` — or is a compiled regular expression searched in it.
        ``land=True`` applies the request before failing ("landed but failed"). ``status=None``
        answers normally after ``delay`` (a slow but good answer). ``disconnect=True`` closes the
        connection without any answer, after applying the request if ``land=True`` (a write that
        landed while the client lost the connection). Faults are consumed in the order they were
        added.
        """
        hdrs = dict(headers or {})
        if retry_after is not None:
            hdrs["Retry-After"] = (
                str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
            )
        if body is None and status is not None:
            body = {"message": _default_message(status), "documentation_url": DOCS}
        fault = Fault(
            method=method.upper() if method != "*" else "*",
            pattern=path,
            status=status,
            times=times,
            land=land,
            body=body,
            headers=hdrs,
            delay=delay,
            disconnect=disconnect,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def rate_limit_next(
        self,
        method: str,
        path: PathPattern,
        *,
        kind: str = "primary",
        status: int = 403,
        reset_in: int = 3600,
        retry_after: float | None = None,
        times: int = 1,
    ) -> Fault:
        """A rate-limit answer as GitHub gives it. ``kind="primary"``: ``x-ratelimit-remaining: 0``
        and ``x-ratelimit-reset`` ``reset_in`` seconds ahead. ``kind="secondary"``: GitHub's
        secondary-limit message, with ``Retry-After`` if given."""
        reset = int(time.time()) + reset_in
        if kind == "primary":
            headers = {
                "x-ratelimit-limit": str(self._rate_limit),
                "x-ratelimit-remaining": "0",
                "x-ratelimit-used": str(self._rate_limit),
                "x-ratelimit-reset": str(reset),
                "x-ratelimit-resource": "core",
            }
            message = PRIMARY_RATE_LIMIT_MESSAGE
        elif kind == "secondary":
            headers = {}
            message = SECONDARY_RATE_LIMIT_MESSAGE
        else:
            raise ValueError(f"kind must be 'primary' or 'secondary', not {kind!r}")
        return self.fail_next(
            method,
            path,
            status,
            times=times,
            headers=headers,
            retry_after=retry_after,
            body={"message": message, "documentation_url": DOCS},
        )

    def delay_next(self, method: str, path: PathPattern, seconds: float, *, times: int = 1) -> Fault:
        """Answer normally, but only after ``seconds`` (for timeouts and kill-in-flight tests)."""
        return self.fail_next(method, path, None, times=times, delay=seconds)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> list[Fault]:
        """Faults not yet used up (a test can assert its script was played to the end)."""
        with self._lock:
            return [f for f in self._faults if f.used < f.times]

    # ---- recording ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: PathPattern) -> list[RecordedRequest]:
        """Requests matching ``method`` ("*" for any) and ``path`` (same matching as faults)."""
        probe = Fault(method=method.upper() if method != "*" else "*", pattern=path, times=1 << 62)
        return [r for r in self.requests if probe.matches(r.method, r.route)]

    def count(self, method: str, path: PathPattern) -> int:
        return len(self.requests_to(method, path))

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

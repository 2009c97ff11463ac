"""Go `time.Duration` strings, both ways, as far as the simulator meets them.

Reading: Flux objects carry `interval: 1m0s`, `timeout`, `retryInterval`; their CRDs admit only
`^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$`, so that is all that is parsed. Against an API server that does not validate,
anything else counts as unset, and the controller's default applies.
Writing: Flux prints durations with Go's `Duration.String()` (`retrying in 30s`, `next run in 10m0s`,
`finished in 12.5ms`), so messages read the same here.
"""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_SUBSECOND_UNITS = (("ms", 1_000_000), ("µs", 1_000), ("ns", 1))
_SECOND = 1_000_000_000


def duration_seconds(value: object, default: float) -> float:
    """Seconds of a duration field such as `1m30s` or `500ms`; `default` when unset or not a valid duration."""
    text = str(value) if value else ""
    if not _DURATION.fullmatch(text):
        return default
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """`Duration.String()` of a non-negative duration: `0s`, `850µs`, `12.5ms`, `30s`, `1m0s`, `1h0m0s`."""
    nanos = max(round(seconds * 1e9), 0)
    if nanos == 0:
        return "0s"
    if nanos < _SECOND:
        unit, size = next((unit, size) for unit, size in _SUBSECOND_UNITS if nanos >= size)
        return f"{_decimal(nanos / size)}{unit}"
    hours, rest = divmod(nanos, 3600 * _SECOND)
    minutes, rest = divmod(rest, 60 * _SECOND)
    secs = f"{_decimal(rest / _SECOND)}s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs


def _decimal(value: float) -> str:
    """Go prints the fraction without trailing zeros: `1.5`, `30`, `0.25`."""
    return f"{value:.9f}".rstrip("0").rstrip(".") or "0"

"""Go `time.Duration` strings, both ways: Flux objects carry `interval: 1m0s`, and its messages print durations.

Parsing follows `time.ParseDuration` (the CRD pattern admits `ms`, `s`, `m`, `h`; Go also takes `us`/`µs`/`ns`),
formatting follows `Duration.String()` so messages read `retrying in 30s` or `finished in 12.5ms` as Flux's do.
"""

from __future__ import annotations

import re

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration such as `1m30s` or `500ms`; ValueError for anything Go would refuse."""
    value = text.strip()
    sign = 1.0
    if value[:1] in "+-":
        sign = -1.0 if value[0] == "-" else 1.0
        value = value[1:]
    if value == "0":
        return 0.0
    if not value:
        raise ValueError(f"time: invalid duration {text!r}")
    total = 0.0
    position = 0
    while position < len(value):
        match = _PART.match(value, position)
        if match is None:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """`Duration.String()`: `0s`, `850µs`, `12.5ms`, `30s`, `1m0s`, `1h0m0s`, `9m30s`."""
    nanos = round(seconds * 1e9)
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000:
        return f"{sign}{nanos}ns"
    if nanos < 1_000_000:
        return f"{sign}{_trim(nanos / 1_000)}µs"
    if nanos < 1_000_000_000:
        return f"{sign}{_trim(nanos / 1_000_000)}ms"
    hours, rest = divmod(nanos, 3_600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    secs = _trim(rest / 1_000_000_000)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"

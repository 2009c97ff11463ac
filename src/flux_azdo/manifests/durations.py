"""Go `time.Duration` parsing and formatting.

Flux writes intervals with Go's `Duration.String()` (`1m0s`, `10m0s`, `1h0m0s`), so a
flag such as `--interval=90s` must come out as `1m30s` to match Flux byte for byte.
"""

from __future__ import annotations

import re

from flux_azdo.errors import UserError

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,  # U+00B5 micro sign
    "μs": MICROSECOND,  # U+03BC Greek mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_MAX = (1 << 63) - 1
_SEGMENT = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")
# The pattern the Flux CRDs put on spec.interval: what the API server will accept.
_FLUX_INTERVAL = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")


def parse_go_duration(text: str) -> int:
    """Parse like Go's `time.ParseDuration` and return nanoseconds; ValueError if invalid."""
    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = 0
    while s:
        match = _SEGMENT.match(s)
        assert match is not None  # the pattern matches the empty string
        whole, frac, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not frac:
            raise ValueError(f"invalid duration {text!r}")
        if unit not in _UNITS:
            raise ValueError(f"unknown or missing unit in duration {text!r}")
        scale = _UNITS[unit]
        value = int(whole or "0") * scale
        if frac:
            # Go adds the fraction through float64, truncating; do the same.
            value += int(float(int(frac)) * (scale / float(10 ** len(frac))))
        total += value
        if total > _MAX + (1 if negative else 0):
            raise ValueError(f"duration {text!r} is out of range")
        s = s[match.end() :]
    return -total if negative else total


def _frac(value: int, precision: int) -> tuple[str, int]:
    digits = ""
    printed = False
    for _ in range(precision):
        digit = value % 10
        printed = printed or digit != 0
        if printed:
            digits = str(digit) + digits
        value //= 10
    return ("." + digits if printed else ""), value


def format_go_duration(ns: int) -> str:
    """Format nanoseconds exactly like Go's `time.Duration.String()`."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < SECOND:
        if u < MICROSECOND:
            return f"{sign}{u}ns"
        unit, precision = ("µs", 3) if u < MILLISECOND else ("ms", 6)
        frac, whole = _frac(u, precision)
        return f"{sign}{whole}{frac}{unit}"
    frac, seconds = _frac(u, 9)
    text = f"{seconds % 60}{frac}s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        if hours:
            text = f"{hours}h{text}"
    return sign + text


def flux_interval(text: str, flag: str = "--interval") -> str:
    """Validate an interval flag and return the form Flux writes (Go duration string)."""
    try:
        ns = parse_go_duration(text.strip())
    except ValueError:
        raise UserError(f"{flag}={text!r} is not a duration: use a Go duration such as 30s, 1m, 10m or 1h30m") from None
    if ns <= 0:
        raise UserError(f"{flag}={text!r} must be positive: use a duration such as 1m")
    formatted = format_go_duration(ns)
    if not _FLUX_INTERVAL.match(formatted):
        raise UserError(f"{flag}={text!r} is {formatted}, which Flux rejects: use whole milliseconds or more, e.g. 1m")
    return formatted

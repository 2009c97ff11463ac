"""Scalars and key order exactly as Flux's YAML library writes them.

Flux marshals with sigs.k8s.io/yaml, a go-yaml v2 encoder. PyYAML differs in two ways
that change bytes: it quotes ambiguous strings with single quotes where go-yaml uses
double quotes (`pods: "1000"`), and it orders keys by code point where go-yaml uses a
"natural" order. Both rules live here so every generator writes values the same way.
The plain-or-quoted analysis itself is libyaml's, which PyYAML's emitter ports verbatim.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from functools import cmp_to_key

import yaml.emitter

_BOOL_OR_NULL = frozenset(
    [
        "y",
        "Y",
        "yes",
        "Yes",
        "YES",
        "true",
        "True",
        "TRUE",
        "on",
        "On",
        "ON",
        "n",
        "N",
        "no",
        "No",
        "NO",
        "false",
        "False",
        "FALSE",
        "off",
        "Off",
        "OFF",
        "~",
        "null",
        "Null",
        "NULL",
        ".nan",
        ".NaN",
        ".NAN",
        ".inf",
        ".Inf",
        ".INF",
        "+.inf",
        "+.Inf",
        "+.INF",
        "-.inf",
        "-.Inf",
        "-.INF",
        "<<",
    ]
)
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_FLOAT = re.compile(r"^[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf(?:inity)?|nan)$", re.IGNORECASE)
_BASE60_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_GO_INT = re.compile(r"^[-+]?(?:0[xX][0-9a-fA-F]+|0[oO]?[0-7]+|0[bB][01]+|[1-9][0-9]*|0)$")
_TIMESTAMP_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dt%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")


def _is_timestamp(s: str) -> bool:
    # go-yaml only tries timestamps for strings that start with a 4-digit year and '-'.
    if len(s) < 5 or not s[:4].isdigit() or s[4] != "-":
        return False
    head = re.sub(r"(\.\d+)?(Z|[+-]\d\d:\d\d)?$", "", s)
    for fmt in _TIMESTAMP_FORMATS:
        try:
            datetime.strptime(head, fmt)
        except ValueError:
            continue
        return True
    return False


def resolves_to_non_string(s: str) -> bool:
    """True when go-yaml v2 would read the plain scalar `s` as something other than a string."""
    if s in _BOOL_OR_NULL or s == "":
        return True
    first = s[0]
    if first == ".":
        return bool(_GO_FLOAT.match(s))
    if first in "0123456789+-":
        if _is_timestamp(s):
            return True
        plain = s.replace("_", "")
        if _GO_INT.match(plain):
            return True
        if _YAML_FLOAT.match(plain):
            return True
        if re.match(r"^-?0b[01]+$", plain):
            return True
    return False


def _analysis(s: str) -> yaml.emitter.ScalarAnalysis:
    return yaml.emitter.Emitter(io.StringIO(), allow_unicode=True).analyze_scalar(s)


_SHORT_ESCAPES = {
    "\0": "0", "\a": "a", "\b": "b", "\t": "t", "\n": "n", "\v": "v", "\f": "f", "\r": "r", "\x1b": "e",
    '"': '"', "\\": "\\", "\x85": "N", "\xa0": "_", "\u2028": "L", "\u2029": "P",
}  # fmt: skip


def _go_printable(ch: str) -> bool:
    """libyaml's (and go-yaml's) notion of printable: no C1 controls, BOM, or characters beyond U+FFFF."""
    o = ord(ch)
    return ch == "\n" or 0x20 <= o <= 0x7E or 0xA0 <= o <= 0xD7FF or (0xE000 <= o <= 0xFFFD and o != 0xFEFF)


def _double_quoted(s: str) -> str:
    out = []
    for ch in s:
        if ch in _SHORT_ESCAPES:
            out.append("\\" + _SHORT_ESCAPES[ch])
        elif _go_printable(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02X}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(f"\\U{ord(ch):08X}")
    return '"' + "".join(out) + '"'


def scalar(s: str) -> str:
    """Render a string value the way go-yaml v2 emits it in block context."""
    if "\n" in s:
        raise ValueError("multi-line values are not written by these generators")
    if resolves_to_non_string(s) or _BASE60_FLOAT.match(s) or not all(map(_go_printable, s)):
        return _double_quoted(s)
    analysis = _analysis(s)
    if analysis.allow_block_plain:
        return s
    if analysis.allow_single_quoted:
        return "'" + s.replace("'", "''") + "'"
    return _double_quoted(s)


def _key_compare(a: str, b: str) -> int:
    """go-yaml v2's map key order: letters before other runes, digit runs numerically."""
    ar, br = a, b
    for i in range(min(len(ar), len(br))):
        if ar[i] == br[i]:
            continue
        al, bl = ar[i].isalpha(), br[i].isalpha()
        if al and bl:
            return -1 if ar[i] < br[i] else 1
        if al or bl:
            return 1 if al else -1
        an = bn = 0
        if ar[i] == "0" or br[i] == "0":
            j = i - 1
            while j >= 0 and ar[j].isdigit():
                if ar[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(ar) and ar[ai].isdigit():
            an = an * 10 + int(ar[ai])
            ai += 1
        bi = i
        while bi < len(br) and br[bi].isdigit():
            bn = bn * 10 + int(br[bi])
            bi += 1
        if an != bn:
            return -1 if an < bn else 1
        if ai != bi:
            return -1 if ai < bi else 1
        return -1 if ar[i] < br[i] else 1
    return (len(ar) > len(br)) - (len(ar) < len(br))


def sort_keys(keys: list[str]) -> list[str]:
    return sorted(keys, key=cmp_to_key(_key_compare))


def key_sorts_before(a: str, b: str) -> bool:
    return _key_compare(a, b) < 0

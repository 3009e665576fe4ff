"""Timestamps: text patterns, and exact nanosecond arithmetic in Python.

Every input form becomes integer nanoseconds since 1970-01-01T00:00:00Z (no
float on the way), between 0001-01-01 and 9999-12-31 UTC; `sql.py` does the
same arithmetic in DuckDB.  Text forms are regular expressions with named
groups shared by both: ISO 8601, and strptime-like patterns compiled here
(a fixed set of directives, so both encoders read them alike)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

NS = 1_000_000_000
DAY_NS = 86_400 * NS
UNIX_ORDINAL = date(1970, 1, 1).toordinal()
MIN_NS = (date(1, 1, 1).toordinal() - UNIX_ORDINAL) * DAY_NS
END_NS = (date(9999, 12, 31).toordinal() + 1 - UNIX_ORDINAL) * DAY_NS
EPOCH_UNITS = {"epoch_s": 9, "epoch_ms": 6, "epoch_us": 3, "epoch_ns": 0}
OUTPUT_FORMATS = ("iso8601", *EPOCH_UNITS)
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")

# group names (DuckDB compares them without case: all distinct in lower case)
_ZONE = r"(?P<zone>Z|[+-][0-9]{2}(?::?[0-9]{2})?)"
ISO8601 = (r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
           r"(?:[T ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
           r"(?::(?P<second>[0-9]{2})(?:[.,](?P<frac>[0-9]{1,9}))?)?)?" + _ZONE + "?")
DIRECTIVES = {
    "Y": r"(?P<year>[0-9]{4})",
    "m": r"(?P<month>[0-9]{1,2})",
    "b": r"(?P<monthname>(?i:" + "|".join(MONTHS) + "))",
    "d": r"(?P<day>[0-9]{1,2})",
    "H": r"(?P<hour>[0-9]{1,2})",
    "M": r"(?P<minute>[0-9]{1,2})",
    "S": r"(?P<second>[0-9]{1,2})",
    "f": r"(?P<frac>[0-9]{1,9})",
    "z": _ZONE,
}
# a decimal number as JSON or a string may hold it: the epoch inputs
DECIMAL = (r"(?P<sign>[+-]?)(?P<digits>[0-9]+)(?:\.(?P<fraction>[0-9]+))?"
           r"(?:[eE](?P<exp>[+-]?[0-9]+))?")
MAX_DIGITS = 36


@dataclass(frozen=True, slots=True)
class TextPattern:
    regex: str  # unanchored; matched whole
    groups: tuple[str, ...]  # in order of appearance


def text_pattern(parse: str) -> TextPattern:
    """`iso8601` or a strptime-like pattern (ValueError: what is wrong)."""
    if parse == "iso8601":
        regex = ISO8601
    else:
        parts, seen, position = [], set(), 0
        while position < len(parse):
            char = parse[position]
            if char != "%":
                parts.append(re.escape(char))
                position += 1
                continue
            directive = parse[position + 1:position + 2]
            position += 2
            if directive == "%":
                parts.append("%")
            elif directive in DIRECTIVES:
                if directive in seen or (directive in "mb" and seen & {"m", "b"}):
                    raise ValueError(f"parse pattern {parse!r}: %{directive} twice")
                seen.add(directive)
                parts.append(DIRECTIVES[directive])
            else:
                raise ValueError(f"parse pattern {parse!r}: %{directive} is not supported "
                                 f"(use %{' %'.join(DIRECTIVES)} %%)")
        if "Y" not in seen or "d" not in seen or not seen & {"m", "b"}:
            raise ValueError(f"parse pattern {parse!r} needs %Y, %m or %b, and %d")
        regex = "".join(parts)
    return TextPattern(regex, tuple(re.findall(r"\(\?P<([a-z]+)>", regex)))


def days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


class TextParser:
    """Text -> ns, or a reason (str) when it is not a timestamp."""

    def __init__(self, parse: str) -> None:
        self._match = re.compile(text_pattern(parse).regex).fullmatch

    def __call__(self, text: str) -> int | str:
        found = self._match(text)
        if found is None:
            return "not a timestamp in the parse format"
        g = found.groupdict()
        year = int(g["year"])
        name = g.get("monthname")
        month = MONTHS.index(name.lower()) + 1 if name else int(g.get("month") or 1)
        day = int(g["day"])
        hour, minute, second = (int(g.get(k) or 0) for k in ("hour", "minute", "second"))
        zone = g.get("zone") or ""
        zone_hours = int(zone[1:3]) if len(zone) > 1 else 0
        zone_minutes = int(zone[-2:]) if len(zone) > 3 else 0
        if not (year >= 1 and 1 <= month <= 12 and 1 <= day <= days_in_month(year, month)
                and hour <= 23 and minute <= 59 and second <= 59 and zone_hours <= 23
                and zone_minutes <= 59):
            return "not a valid date or time"
        frac = g.get("frac") or ""
        offset = (zone_hours * 60 + zone_minutes) * (-60 if zone[:1] == "-" else 60)
        days = date(year, month, day).toordinal() - UNIX_ORDINAL
        ns = ((days * 86_400 + hour * 3600 + minute * 60 + second - offset) * NS
              + int(frac.ljust(9, "0") or 0))
        return ns if MIN_NS <= ns < END_NS else "timestamp out of range"


_DECIMAL = re.compile(DECIMAL).fullmatch


def epoch_ns(text: str, unit: int) -> int | str:
    """A decimal number of a unit (10**unit ns) -> ns, floored; or a reason."""
    found = _DECIMAL(text)
    if found is None:
        return "not an epoch number"
    fraction = found["fraction"] or ""
    digits = (found["digits"] + fraction).lstrip("0")
    if not digits:
        return 0
    exp = found["exp"] or "0"
    if len(digits) > MAX_DIGITS or len(exp.lstrip("+-")) > 6:
        return "timestamp out of range"
    scale = unit + int(exp) - len(fraction)
    if len(digits) + scale > 30:
        return "timestamp out of range"
    value = -int(digits) if found["sign"] == "-" else int(digits)
    if scale >= 0:
        ns = value * 10 ** scale
    elif len(digits) + scale <= 0:  # below one ns
        ns = -1 if value < 0 else 0
    else:
        ns = value // 10 ** -scale
    return ns if MIN_NS <= ns < END_NS else "timestamp out of range"


def render(ns: int, output: str) -> int | str:
    """ns in an output format: an int (epoch units, floored) or ISO 8601 UTC text
    with 0, 3, 6 or 9 fraction digits (the fewest that are exact)."""
    if output != "iso8601":
        return ns // 10 ** EPOCH_UNITS[output]
    days, rest = divmod(ns, DAY_NS)
    day = date.fromordinal(days + UNIX_ORDINAL)
    seconds, frac = divmod(rest, NS)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return (f"{day.year:04d}-{day.month:02d}-{day.day:02d}T{hour:02d}:{minute:02d}:"
            f"{second:02d}{fraction_text(frac)}Z")


def fraction_text(frac: int) -> str:
    if frac == 0:
        return ""
    if frac % 1_000_000 == 0:
        return f".{frac // 1_000_000:03d}"
    if frac % 1000 == 0:
        return f".{frac // 1000:06d}"
    return f".{frac:09d}"

"""Go time layouts (``2006-01-02T15:04:05Z07:00``) for ``*datetime`` fields, compiled once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

RFC3339: Final = "2006-01-02T15:04:05Z07:00"
Part = Callable[[datetime], str]


def _offset(colon: bool, z_for_utc: bool) -> Part:
    def render(moment: datetime) -> str:
        offset = moment.utcoffset() or timedelta(0)
        if z_for_utc and offset == timedelta(0):
            return "Z"
        minutes = int(offset.total_seconds()) // 60
        sign = "-" if minutes < 0 else "+"
        hours, minutes = divmod(abs(minutes), 60)
        return f"{sign}{hours:02d}{':' if colon else ''}{minutes:02d}"

    return render


def _fraction(digits: int) -> Part:
    return lambda moment: "." + f"{moment.microsecond:06d}{0:03d}"[:digits]


# Longest tokens first, so "2006" wins over "06" and "Z07:00" over "07".
_TOKENS: Final[tuple[tuple[str, Part], ...]] = (
    ("Z07:00", _offset(True, True)),
    ("-07:00", _offset(True, False)),
    ("Z0700", _offset(False, True)),
    ("-0700", _offset(False, False)),
    (".000000000", _fraction(9)),
    (".000000", _fraction(6)),
    (".000", _fraction(3)),
    ("January", lambda m: m.strftime("%B")),
    ("Monday", lambda m: m.strftime("%A")),
    ("2006", lambda m: f"{m.year:04d}"),
    ("Jan", lambda m: m.strftime("%b")),
    ("Mon", lambda m: m.strftime("%a")),
    ("MST", lambda m: m.tzname() or ""),
    ("01", lambda m: f"{m.month:02d}"),
    ("02", lambda m: f"{m.day:02d}"),
    ("15", lambda m: f"{m.hour:02d}"),
    ("03", lambda m: f"{(m.hour % 12) or 12:02d}"),
    ("04", lambda m: f"{m.minute:02d}"),
    ("05", lambda m: f"{m.second:02d}"),
    ("06", lambda m: f"{m.year % 100:02d}"),
    ("PM", lambda m: "PM" if m.hour >= 12 else "AM"),
)


def _literal(text: str) -> Part:
    return lambda _moment: text


def compile_layout(layout: str) -> Callable[[datetime], str]:
    """A formatter for a Go layout (an empty layout is RFC 3339)."""
    text = layout or RFC3339
    parts: list[Part] = []
    position = 0
    while position < len(text):
        for token, part in _TOKENS:
            if text.startswith(token, position):
                parts.append(part)
                position += len(token)
                break
        else:
            parts.append(_literal(text[position]))
            position += 1
    return lambda moment: "".join(part(moment) for part in parts)

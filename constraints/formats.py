"""Fallback checkers for JSON-schema string formats whose usual checker is not installed.

Overview: ``jsonschema`` checks ``date-time``, ``time``, ``hostname`` and ``uri`` only
with optional packages (rfc3339-validator, fqdn, rfc3987). :data:`FALLBACK_FORMATS` maps
those format names to plain checks of RFC 3339, RFC 1123 and RFC 3986 syntax;
:class:`~.json_schema.SchemaCheck` registers each one its ``FormatChecker`` lacks. A
checker accepts any value that is not a string (formats constrain strings only).

Example::

    from awrs_adapters.constraints.formats import FALLBACK_FORMATS
    is_date_time = FALLBACK_FORMATS["date-time"]
    assert is_date_time("2024-02-29T12:00:00Z") and not is_date_time("2023-02-29T12:00:00Z")
    assert FALLBACK_FORMATS["hostname"]("example.com") and is_date_time(3)
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["FALLBACK_FORMATS"]

_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))")
_TIME = re.compile(r"(\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))")
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:([A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")


def _is_date_time(x: Any) -> bool:
    import datetime

    if not isinstance(x, str):
        return True
    m = _DATE_TIME.fullmatch(x)
    if not m:
        return False
    y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
    try:
        datetime.date(y, mo, d)
    except ValueError:
        return False
    off_ok = m.group(9) is None or (int(m.group(9)) <= 23 and int(m.group(10)) <= 59)
    return h <= 23 and mi <= 59 and sec <= 60 and off_ok


def _is_time(x: Any) -> bool:
    if not isinstance(x, str):
        return True
    m = _TIME.fullmatch(x)
    if not m:
        return False
    h, mi, sec = (int(g) for g in m.groups()[:3])
    off_ok = m.group(6) is None or (int(m.group(6)) <= 23 and int(m.group(7)) <= 59)
    return h <= 23 and mi <= 59 and sec <= 60 and off_ok


def _is_hostname(x: Any) -> bool:
    if not isinstance(x, str):
        return True
    name = x[:-1] if x.endswith(".") else x
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(p) for p in name.split("."))


def _is_uri(x: Any) -> bool:
    return not isinstance(x, str) or _URI.fullmatch(x) is not None


#: RFC 3339 / RFC 1123 / RFC 3986 checks for formats whose jsonschema checker needs an
#: optional package (rfc3339-validator, fqdn, rfc3987); used only when it is missing.
FALLBACK_FORMATS = {"date-time": _is_date_time, "time": _is_time,
                     "hostname": _is_hostname, "uri": _is_uri}

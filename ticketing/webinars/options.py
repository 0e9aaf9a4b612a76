"""The webinar's attendance options, as the API takes them: `one_device` and `certificate_min_percent`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ticketing.errors import N_, Invalid, Text

FIELDS = ("one_device", "certificate_min_percent")


def parsers(data: Mapping[str, Any], *, creating: bool) -> list[tuple[str, Callable[[], Any]]]:
    """For each option present in `data` (all of them, with defaults, when creating), its name
    and a function reading it that raises Invalid."""

    def one_device() -> bool:
        value = data.get("one_device", False)
        if value is None and creating:
            value = False
        if not isinstance(value, bool):
            raise Invalid(Text(N_("one_device must be true or false")), field="one_device")
        return value

    def certificate_min_percent() -> int | None:
        value = data.get("certificate_min_percent")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100):
            raise Invalid(Text(N_("certificate_min_percent must be a whole number from 1 to 100, or null for no certificates")),
                          field="certificate_min_percent")
        return value

    return [(name, parse) for name, parse in (("one_device", one_device),
                                              ("certificate_min_percent", certificate_min_percent))
            if creating or name in data]


def as_json(webinar: Any) -> dict[str, Any]:
    return {"one_device": bool(webinar.one_device), "certificate_min_percent": webinar.certificate_min_percent}

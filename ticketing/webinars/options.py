"""The webinar's attendance options, as the API takes them: `one_device` and `certificate_min_percent`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ticketing.errors import Invalid

FIELDS = ("one_device", "certificate_min_percent")


def parse(data: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    """The options present in `data` (all of them, with defaults, when creating); raises Invalid."""
    fields: dict[str, Any] = {}
    if creating or "one_device" in data:
        value = data.get("one_device", False)
        if value is None and creating:
            value = False
        if not isinstance(value, bool):
            raise Invalid("one_device must be true or false", field="one_device")
        fields["one_device"] = value
    if creating or "certificate_min_percent" in data:
        value = data.get("certificate_min_percent")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100):
            raise Invalid("certificate_min_percent must be a whole number from 1 to 100, or null for no certificates",
                          field="certificate_min_percent")
        fields["certificate_min_percent"] = value
    return fields


def as_json(webinar: Any) -> dict[str, Any]:
    return {"one_device": bool(webinar.one_device), "certificate_min_percent": webinar.certificate_min_percent}

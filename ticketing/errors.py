"""Domain errors. The web layer maps each kind to one HTTP status; the CLI prints the message."""

from __future__ import annotations


def N_(text: str) -> str:
    """Marks a message for the catalog; it is translated where it is shown, in its reader's language."""
    return text


class Text(str):
    """An English message that keeps its catalog template and values, so that a page can say it
    again in its reader's language; everywhere else it is the plain English string."""

    template: str
    params: dict[str, object]
    plural: tuple[str, int] | None = None  # the plural template and the count that chooses

    def __new__(cls, template: str, **params: object) -> Text:
        text = super().__new__(cls, template % params if params else template)
        text.template = template
        text.params = params
        return text

    @classmethod
    def ngettext(cls, singular: str, plural: str, n: int, **params: object) -> Text:
        """A message with a singular and a plural form, chosen by `n` (named so that the
        catalog's extraction finds both forms)."""
        text = cls(singular if n == 1 else plural, **params)
        text.template, text.plural = singular, (plural, n)
        return text


class DomainError(Exception):
    """Something the caller asked for cannot be done."""

    code = "error"

    def __init__(self, message: str | None = None, *, field: str | None = None, reason: str | None = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.field = field
        self.reason = reason  # one word for pages that say it in the reader's language
        super().__init__(self.message)


class Invalid(DomainError):
    """The input is well-formed but not acceptable."""

    code = "invalid"


class NotFound(DomainError):
    """No such thing."""

    code = "not_found"


class Forbidden(DomainError):
    """That belongs to somebody else."""

    code = "forbidden"


class Conflict(DomainError):
    """The current state does not allow that."""

    code = "conflict"


class SoldOut(Conflict):
    """This webinar is sold out."""

    code = "sold_out"

    def __init__(self, message: str | None = None, *, field: str | None = None, left: int = 0) -> None:
        self.left = left  # seats still left (fewer than asked for)
        super().__init__(message, field=field, reason="sold_out")


class RateLimited(DomainError):
    """That has been done too often lately; try again later."""

    code = "too_many_requests"

    def __init__(self, message: str | None = None, *, retry_after: int, field: str | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message, field=field, reason=reason)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A service this depends on is unavailable; try again shortly."""

    code = "unavailable"

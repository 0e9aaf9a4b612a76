"""Console sign-in and sessions: the mailed one-time link, the encrypted session cookie,
the CSRF check on every form, and the signed-in organizer of a request."""

from __future__ import annotations

import time
import urllib.parse
import warnings
from typing import Any

import aiohttp_session
from aiohttp import web
from aiohttp.web_exceptions import NotAppKeyWarning
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet
from multidict import MultiDictProxy

from ticketing import i18n
from ticketing.accounts import sessions, signin
from ticketing.db.models import Organizer
from ticketing.errors import Forbidden, Invalid, NotFound
from ticketing.settings import Settings
from ticketing.web.keys import SESSIONMAKER, SETTINGS
from ticketing.web.ratelimit import RateLimiter
from ticketing.web.responses import render

routes = web.RouteTableDef()

# aiohttp-session keeps its state under plain string keys of the request; aiohttp warns about that once.
warnings.filterwarnings("ignore", message="It is recommended to use web.RequestKey",
                        category=NotAppKeyWarning, module="aiohttp_session")

COOKIE = "ticketing_org"
# Sign-in mails asked for, per minute: from one client address, and for one email address.
SIGNIN_PER_ADDRESS = 10
SIGNIN_PER_EMAIL = 3
SIGNIN_LIMITS = web.AppKey("signin_limits", tuple)
# Where the browser that asked for a link wanted to go; used when the link is opened in it.
AFTER_SIGNIN = "after_signin"


class IdleCookieStorage(EncryptedCookieStorage):
    """Fernet-encrypted cookie whose age counts from its last save, not from sign-in, so
    the 12-hour limit is an idle limit (the session touches itself every few minutes)."""

    def _get_session_data(self, session: aiohttp_session.Session) -> Any:
        data = super()._get_session_data(session)
        if data:
            data["created"] = int(time.time())
        return data


def session_middleware(settings: Settings):
    """aiohttp-session's middleware over the encrypted cookie: HttpOnly, SameSite=Lax,
    Secure when the service is reached over https, 12 hours idle."""
    storage = IdleCookieStorage(
        Fernet(sessions.fernet_key(settings.session_key or "")), cookie_name=COOKIE, path="/org",
        max_age=sessions.IDLE_SECONDS, httponly=True, samesite="Lax", secure=settings.base_url.startswith("https://"),
    )
    return aiohttp_session.session_middleware(storage)


@web.middleware
async def not_yours_is_not_found(request: web.Request, handler) -> web.StreamResponse:
    """In the console another organizer's webinar, order or ticket simply does not exist."""
    try:
        return await handler(request)
    except Forbidden:
        if request.path.startswith("/org"):
            raise NotFound("no such item") from None
        raise


def setup(app: web.Application, settings: Settings) -> None:
    """Wire the console's sessions, its 404 for what is not yours, and the sign-in limits into the app."""
    app.middlewares.append(session_middleware(settings))
    app.middlewares.append(not_yours_is_not_found)
    app[SIGNIN_LIMITS] = (RateLimiter("signin.address", SIGNIN_PER_ADDRESS), RateLimiter("signin.email", SIGNIN_PER_EMAIL))


async def session_of(request: web.Request) -> aiohttp_session.Session:
    return await aiohttp_session.get_session(request)


async def organizer_of(request: web.Request) -> Organizer:
    """The signed-in organizer, or a redirect to the sign-in page (which comes back here)."""
    session = await session_of(request)
    session_id = sessions.signed_in_as(session)
    organizer = None
    if session_id is not None:
        async with request.app[SESSIONMAKER]() as db:
            organizer = await sessions.organizer_of_session(db, session_id)
    if organizer is None:
        session.pop(sessions.SESSION_ID, None)
        target = "/org/login"
        if request.method == "GET" and request.path != "/org":
            target += "?next=" + _quote(request.path_qs)
        raise web.HTTPSeeOther(target)
    return organizer


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="")


def _safe_next(value: object) -> str:
    """Only a path of the console itself, never another site."""
    if isinstance(value, str) and value.startswith("/org") and not value.startswith("//") and "\\" not in value:
        return value
    return "/org"


async def checked_form(request: web.Request) -> MultiDictProxy[Any]:
    """The posted form, once its CSRF token proved it came from one of our pages; else 403."""
    form = await request.post()
    session = await session_of(request)
    if not sessions.csrf_ok(session, form.get("csrf_token")):
        raise web.HTTPForbidden(text="This form has expired or did not come from this site. "
                                     "Go back, reload the page and try again.")
    return form


async def page(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200,
               organizer: Organizer | None = None) -> web.Response:
    """A console page: the CSRF token for its forms and the flash notice come along, and the
    gettext and formats of the console's language (the browser's choice among ours)."""
    session = await session_of(request)
    context = {**i18n.gettext_context(console_language(request, organizer)), "csrf": sessions.csrf_token(session),
               "flash": sessions.take_flash(session), "organizer": organizer,
               "service_host": urllib.parse.urlsplit(request.app[SETTINGS].base_url).netloc, **context}
    return render(request, f"org/{template}", context, status=status)


def console_language(request: web.Request, organizer: Organizer | None = None) -> str:
    """The organizer's chosen console language, else the one their browser prefers."""
    if organizer is not None and organizer.console_language:
        return i18n.language(organizer.console_language)
    return i18n.preferred_language(request.headers.get("Accept-Language"))


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


@routes.get("/org/login")
async def login_form(request: web.Request) -> web.Response:
    session = await session_of(request)
    if sessions.signed_in_as(session) is not None:
        raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
    return await page(request, "login.html", {"email": "", "error": None, "next": _safe_next(request.query.get("next"))})


@routes.post("/org/login")
async def login_request(request: web.Request) -> web.Response:
    """Mail a sign-in link; the answer is the same whether or not the address is known."""
    form = await checked_form(request)
    email = str(form.get("email") or "").strip()
    next_path = _safe_next(form.get("next"))
    per_address, per_email = request.app[SIGNIN_LIMITS]
    db = request.app[SESSIONMAKER]
    wait = await per_address.hit(db, client_address(request)) or (await per_email.hit(db, email.lower()) if email else 0)
    t = i18n.translations(console_language(request))
    if wait:
        response = await page(request, "login.html", {
            "email": email, "next": next_path,
            "error": t.ngettext("Too many sign-in links asked for; try again in %(num)d second.",
                                "Too many sign-in links asked for; try again in %(num)d seconds.", wait) % {"num": wait}},
            status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    (await session_of(request))[AFTER_SIGNIN] = next_path
    try:
        async with request.app[SESSIONMAKER].begin() as db:
            await signin.request_link(db, email, language=console_language(request))
    except Invalid:
        return await page(request, "login.html", {"email": email, "next": next_path,
                                                  "error": t.gettext("Enter your email address, like name@example.com.")},
                          status=422)
    return await page(request, "login_sent.html", {"email": email})


@routes.get("/org/login/{token}")
async def login_link(request: web.Request) -> web.Response:
    """Ask to confirm before signing in, so a mail scanner that opens links does not use it up."""
    token = request.match_info["token"]
    async with request.app[SESSIONMAKER]() as db:
        found = await signin.check_token(db, token)
    if found.state != signin.LinkState.VALID:
        status = 404 if found.state == signin.LinkState.UNKNOWN else 410
        return await page(request, "login_dead.html", {"state": found.state.value}, status=status)
    response = await page(request, "login_confirm.html", {"token": token})
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@routes.post("/org/login/{token}")
async def login_use(request: web.Request) -> web.Response:
    await checked_form(request)
    after = _safe_next((await session_of(request)).get(AFTER_SIGNIN))
    async with request.app[SESSIONMAKER].begin() as db:
        used = await signin.use_token(db, request.match_info["token"])
        session_id = await sessions.start(db, used.organizer_id) if used.state == signin.LinkState.VALID else None
    if session_id is None:
        return await page(request, "login_dead.html", {"state": used.state.value},
                          status=410 if used.state != signin.LinkState.UNKNOWN else 404)
    session = await aiohttp_session.new_session(request)
    sessions.sign_in(session, session_id)
    raise web.HTTPSeeOther(after)


@routes.post("/org/logout")
async def logout(request: web.Request) -> web.Response:
    await checked_form(request)
    session = await session_of(request)
    session_id = sessions.signed_in_as(session)
    if session_id is not None:
        async with request.app[SESSIONMAKER].begin() as db:
            await sessions.end(db, session_id)
    session.invalidate()
    session = await aiohttp_session.new_session(request)
    sessions.flash(session, i18n.translations(console_language(request)).gettext("You are signed out."))
    raise web.HTTPSeeOther("/org/login")

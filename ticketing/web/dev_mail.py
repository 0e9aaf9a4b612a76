"""Dev mode only: /dev/mail lists the mails the dev sink wrote, /dev/mail/{name} shows one."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ticketing.mail.sending import list_sinked, read_sinked
from ticketing.web.keys import SETTINGS
from ticketing.web.responses import render

routes = web.RouteTableDef()


@routes.get("/dev/mail")
async def mail_list(request: web.Request) -> web.Response:
    mails = await asyncio.to_thread(list_sinked, request.app[SETTINGS].mail_dir)
    return render(request, "dev_mail.html", {"mails": mails, "mail": None})


@routes.get("/dev/mail/{name}")
async def mail_detail(request: web.Request) -> web.Response:
    mail = await asyncio.to_thread(read_sinked, request.app[SETTINGS].mail_dir, request.match_info["name"])
    if mail is None:
        raise web.HTTPNotFound(text="no such mail in the dev sink")
    # The mail's HTML part, in its sandboxed frame, keeps the inline styles mail clients honour.
    return render(request, "dev_mail.html", {"mails": None, "mail": mail}, inline_styles=True)

"""A bare aiohttp server for baselines: `--mode read` reads the body and answers 200,
`--mode redirect` answers 302. Nothing else, so it shows what aiohttp alone costs."""

from __future__ import annotations

import argparse

from aiohttp import web


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def read_body(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"received": True})


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("https://meet.example.org/room?jwt=x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("read", "redirect"), required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    handler = read_body if args.mode == "read" else redirect
    app.router.add_route("*", "/{tail:.*}", handler)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()

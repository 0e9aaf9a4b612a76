"""The join link on PostgreSQL after the database connection went away meanwhile: the pool does
not ping, so the dead connection is found by the statement, which runs again on a fresh one."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from tests import factories
from tests.access.conftest import SECRET, add_ticket
from ticketing.access import join
from ticketing.access.tokens import Tokens
from ticketing.db import create_engine, create_sessionmaker
from ticketing.db.models import Ticket
from ticketing.settings import Settings


async def test_a_join_after_the_connection_died_still_admits_and_counts(postgres_proxy, postgres_url, var_dir):
    proxy, proxied_url = postgres_proxy
    settings = Settings.from_env({"TICKETING_DATABASE_URL": proxied_url, "TICKETING_VAR_DIR": str(var_dir),
                                  "TICKETING_JITSI_APP_SECRET": SECRET}, dotenv=None)
    tokens = Tokens.from_settings(settings)
    direct = create_engine(postgres_url)
    through_proxy = create_engine(proxied_url)
    try:
        sessionmaker = create_sessionmaker(direct)
        webinar = await factories.webinar(sessionmaker)
        ticket, code = await add_ticket(sessionmaker, webinar)
        now = webinar.starts_at + dt.timedelta(minutes=1)
        proxied = create_sessionmaker(through_proxy)
        assert isinstance(await join.open_link(proxied, tokens, code, now=now), join.Admitted)  # pool warm
        await proxy.stop()  # every pooled connection is cut
        await proxy.start()
        assert isinstance(await join.open_link(proxied, tokens, code, now=now), join.Admitted)
        async with sessionmaker() as session:
            assert await session.scalar(select(Ticket.join_count).where(Ticket.id == ticket.id)) == 2
    finally:
        await through_proxy.dispose()
        await direct.dispose()

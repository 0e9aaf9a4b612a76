from tests import factories


async def test_paid_checkout_event_issues_tickets(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    response = await factories.post_event(client, factories.event("checkout.session.completed",
                                                                  factories.checkout_session(webinar, quantity=2)))
    assert response.status == 200, await response.text()
    assert (await response.json())["outcome"] == "order_paid"

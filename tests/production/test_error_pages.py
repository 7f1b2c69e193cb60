"""Issue 13: under DEBUG (make run) people see the product's own, styled 404/403/500 pages, not
Django's technical ones (whose inline styles the CSP blocks, so they showed as plain text)."""

import pytest
from django.test import Client
from django.urls import path

from avtrz.urls import urlpatterns as site_urlpatterns


def _boom(request):
    raise RuntimeError("a bug")


urlpatterns = [*site_urlpatterns, path("boom/", _boom)]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def _styled(response) -> str:
    body = response.content.decode()
    assert "/static/css/" in body and "<!doctype html>" in body.lower()
    assert "DEBUG = True" not in body
    assert "Content-Security-Policy" in response
    return body


@pytest.mark.parametrize("url", ["/no-such-page/", "/invitations/not-a-real-token/", "/w/nope/"])
def test_a_404_under_debug_is_the_product_page(settings, alice_client, url):
    settings.DEBUG = True
    response = alice_client.get(url)
    assert response.status_code == 404
    assert "Not found" in _styled(response)


def test_a_403_under_debug_is_the_product_page(settings, bob_client):
    settings.DEBUG = True
    response = bob_client.post("/w/acme/rename/", {"name": "Bob's"})
    assert response.status_code == 403
    _styled(response)


def test_a_500_under_debug_is_the_product_page_and_the_error_is_logged(settings, caplog):
    settings.DEBUG = True
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    assert "Something went wrong" in _styled(response)
    assert any("a bug" in str(record.exc_info) for record in caplog.records if record.exc_info)


def test_developers_can_ask_for_the_technical_pages(settings):
    settings.DEBUG = True
    settings.DEBUG_TECHNICAL_ERRORS = True
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert "DEBUG = True" in response.content.decode()


def test_production_404_and_500_pages_are_the_same(settings):
    settings.DEBUG = False
    assert "Not found" in _styled(Client().get("/no-such-page/"))
    assert "Something went wrong" in _styled(Client(raise_request_exception=False).get("/boom/"))

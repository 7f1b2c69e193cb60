"""`/v1/avatar` under the meter: refused requests do no work, rate-limit headers, and what an <img> over
the rate limit sees."""

import pytest

from avtrz.avatars import api
from avtrz.avatars.models import Profile
from tests.avatars.test_api import IMG, _fast, get, requests_used
from workspaces import usage
from workspaces.models import DailyUsage, Plan, UsagePeriod, WorkspaceProfile


pytestmark = pytest.mark.django_db


def limits(*, per_second: int, burst: int, monthly: int | None = None) -> None:
    """The Free plan's token bucket (and request quota); the workspace's next period takes them."""
    UsagePeriod.objects.all().delete()
    changes = {"requests_per_second": per_second, "burst": burst}
    if monthly is not None:
        changes["monthly_requests"] = monthly
    Plan.objects.filter(code="free").update(**changes)


def first_refused(fetch, *, tries: int = 20):
    """Call `fetch` until the meter refuses one: on a loaded machine a second may pass between two
    requests and refill the bucket. A refusal is anything but a billed answer (a 200 monogram, or a
    302 cached for a day)."""
    for _ in range(tries):
        response = fetch()
        if response.status_code != 200 and response.get("Cache-Control") != "public, max-age=86400":
            return response
    raise AssertionError(f"{tries} requests at 1 a second were never refused")


def refused(acme) -> tuple[int, int]:
    usage.flush_now(force=True)
    day = DailyUsage.objects.filter(workspace=acme).first()
    return (day.refused_429, day.refused_402) if day else (0, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("over", ["requests", "rate"])
def test_a_refused_caller_creates_no_profile_and_fetches_nothing(client, pk, eileen, linkedin, acme, over):
    linkedin.profile("alex-rivera", photo_url=linkedin.photo("face.jpg"))
    if over == "requests":
        limits(per_second=1000, burst=1000, monthly=1)
    else:
        limits(per_second=1, burst=1)
    assert get(client, key=pk, username="eileen-collins").status_code == 302  # spends the quota or the bucket

    response = get(client, key=pk, username="alex-rivera")

    assert response.status_code == (402 if over == "requests" else 429)
    assert not Profile.objects.filter(handle="alex-rivera").exists()
    assert not WorkspaceProfile.objects.filter(handle="alex-rivera").exists()
    assert UsagePeriod.objects.get(workspace=acme).avatar_new_profiles == 1  # eileen's only
    assert linkedin.server.requests == []  # no enrichment was queued, nothing was fetched


@pytest.mark.django_db(transaction=True)
def test_an_admitted_new_profile_is_still_looked_up(client, pk, linkedin):
    """The control for the test above: the same request within limits reaches the source."""
    linkedin.profile("alex-rivera", photo_url=linkedin.photo("face.jpg"))
    assert get(client, key=pk, username="alex-rivera").status_code == 302
    assert any(request.path == "/in/alex-rivera/" for request in linkedin.server.requests)


def test_unmetered_answers_carry_no_rate_limit_headers(client, pk, eileen):
    etag = get(client, key=pk, username="eileen-collins")["ETag"]
    for response in (
        get(client, key=pk, username="eileen-collins", HTTP_IF_NONE_MATCH=etag),  # 304: not billed
        get(client, key=pk, username="x"),  # 400
        get(client, key="pk_live_nope_nope_nope_nope_nope", username="eileen-collins"),  # 401
    ):
        assert "RateLimit" not in response and "RateLimit-Policy" not in response, response.status_code


def test_over_the_rate_an_img_keeps_its_photo_unbilled(client, pk, eileen, acme):
    limits(per_second=1, burst=1)
    billed = get(client, key=pk, username="eileen-collins", **IMG)
    over = first_refused(lambda: get(client, key=pk, username="eileen-collins", **IMG))
    assert over.status_code == 302
    assert over["Location"] == billed["Location"] and over["ETag"] == billed["ETag"]
    assert over["Cache-Control"] == "private, max-age=60"  # asked again soon, when it can be counted
    assert refused(acme) == (1, 0)  # tallied as refused on the chart, not billed:
    assert requests_used(acme) == DailyUsage.objects.get(workspace=acme).api_hits


def test_over_the_rate_an_img_without_a_known_photo_gets_the_429_monogram(client, pk, linkedin, settings):
    settings.AVTRZ_ENRICH_WAIT_S = 0
    limits(per_second=1, burst=1)
    linkedin.answer("nobody-here", 404)
    response = first_refused(lambda: get(client, key=pk, username="nobody-here", **IMG))
    assert response.status_code == 429 and response["Content-Type"] == "image/svg+xml"


def test_over_quota_an_img_still_gets_402(client, pk, eileen, acme):
    limits(per_second=1000, burst=1000, monthly=1)
    get(client, key=pk, username="eileen-collins", **IMG)
    response = get(client, key=pk, username="eileen-collins", **IMG)
    assert response.status_code == 402 and response["Content-Type"] == "image/svg+xml"
    assert refused(acme) == (0, 1)


def test_a_blocked_profile_is_enriching_on_both_channels(client, pk, acme):
    from mcpserver.lookups import profile_avatar

    Profile.objects.create(handle="walled-off", status=Profile.Status.BLOCKED)
    response = get(client, key=pk, username="walled-off")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert response["Cache-Control"] == "no-store"
    assert response[api.STATUS_HEADER] == "enriching"
    assert profile_avatar(acme, None, "walled-off", 64).structured["status"] == "enriching"


def test_metered_answers_carry_the_rate_limit_headers(client, pk, eileen):
    limits(per_second=5, burst=60)
    first = get(client, key=pk, username="eileen-collins")
    second = get(client, key=pk, username="eileen-collins", **IMG)
    assert first.status_code == second.status_code == 302
    assert first["RateLimit-Policy"] == '"burst";q=60;w=12'
    assert first["RateLimit"] == '"burst";r=59;t=0'
    assert second["RateLimit"] == '"burst";r=58;t=0'


def test_the_monogram_answer_carries_them_too(client, pk, linkedin, settings):
    settings.AVTRZ_ENRICH_WAIT_S = 0
    limits(per_second=5, burst=60)
    linkedin.answer("nobody-here", 404)
    response = get(client, key=pk, username="nobody-here")
    assert response.status_code == 200
    assert response["RateLimit"] == '"burst";r=59;t=0'


def test_over_the_rate_json_gets_429_with_retry_after_and_headers(client, pk, eileen, acme):
    limits(per_second=1, burst=2)
    statuses = [get(client, key=pk, username="eileen-collins").status_code for _ in range(3)]
    response = get(client, key=pk, username="eileen-collins")
    assert statuses[:2] == [302, 302] and response.status_code == 429
    assert response["Retry-After"] == "1"
    assert response["RateLimit-Policy"] == '"burst";q=2;w=2'
    assert response["RateLimit"] == '"burst";r=0;t=1'
    assert response["Cache-Control"] == "no-store"
    assert response.json()["error"]["code"] == "rate_limited"
    assert "bursts of 2" in response.json()["error"]["message"]
    assert requests_used(acme) == 2


def test_the_fast_path_replay_counts_down_the_bucket(client, pk, eileen):
    limits(per_second=5, burst=60)
    get(client, key=pk, username="eileen-collins")  # warm: answered by Django
    answers = [_fast(pk, username="eileen-collins") for _ in range(3)]
    assert [status for status, _ in answers] == [302, 302, 302]
    assert [headers[b"ratelimit"] for _, headers in answers] == [b'"burst";r=%d;t=0' % n for n in (58, 57, 56)]
    assert all(headers[b"ratelimit-policy"] == b'"burst";q=60;w=12' for _, headers in answers)


def test_the_api_reference_explains_the_headers_and_the_img_decision(client):
    from django.urls import reverse

    html = client.get(reverse("docs:api")).content.decode()
    assert 'RateLimit-Policy: "burst";q=60;w=12' in html and "private, max-age=60" in html
    documented = client.get("/v1/openapi.json").json()["paths"]["/v1/avatar"]["get"]["responses"]
    assert {"RateLimit-Policy", "RateLimit"} <= set(documented["302"]["headers"]) & set(documented["429"]["headers"])
    assert "Avtrz-Profile-Status" in documented["200"]["headers"]


def test_an_opted_out_profile_says_so_on_both_channels(client, pk, acme):
    from avtrz.avatars.cards import OPTED_OUT, Card, remember
    from mcpserver.lookups import profile_avatar

    remember(Card(handle="left-us", status=OPTED_OUT))
    response = get(client, key=pk, username="left-us")
    assert response.status_code == 200 and response[api.STATUS_HEADER] == "opted_out"
    assert profile_avatar(acme, None, "left-us", 64).structured["status"] == "opted_out"

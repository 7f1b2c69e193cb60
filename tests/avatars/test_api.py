"""`GET /v1/avatar` and friends, through Django's test client and the cache-only fast path."""

import pytest
from django.utils import timezone

from avtrz.avatars import api
from avtrz.avatars.models import Profile
from workspaces import services, usage
from workspaces.models import ApiKey, Plan, UsagePeriod


pytestmark = pytest.mark.django_db

IMG = {"HTTP_ACCEPT": "image/avif,image/webp,image/*,*/*;q=0.8"}


def get(client, **params):
    headers = {k: v for k, v in params.items() if k.startswith("HTTP_")}
    query = {k: v for k, v in params.items() if not k.startswith("HTTP_")}
    return client.get("/v1/avatar", query, **headers)


def requests_used(workspace) -> int:
    return usage.requests_used(usage.current_period(workspace).pk)


def test_resolved_profile_redirects_to_a_durable_image(client, pk, eileen, acme):
    response = get(client, key=pk, linkedin_url="https://uk.linkedin.com/in/Eileen-Collins/?trk=x", size="256")
    assert response.status_code == 302
    assert response["Cache-Control"] == "public, max-age=86400"
    location = response["Location"]
    assert location.startswith("http://testserver/img/") and location.endswith(".webp")
    digest = location.rsplit("/", 1)[1].split(".")[0]
    assert response["ETag"] == f'"{digest}"'

    image = client.get(location.removeprefix("http://testserver"))
    assert image.status_code == 200
    assert image["Content-Type"] == "image/webp"
    assert image["Cache-Control"] == "public, max-age=31536000, immutable"
    assert image["ETag"] == f'"{digest}"'
    assert client.get(location, HTTP_IF_NONE_MATCH=f'"{digest}"').status_code == 304
    assert requests_used(acme) == 1


def test_every_size_has_its_own_image(client, pk, eileen):
    locations = {get(client, key=pk, username="eileen-collins", size=str(s))["Location"] for s in api.SIZES}
    assert len(locations) == 5
    assert get(client, key=pk, username="eileen-collins")["Location"] in locations  # default size exists


def test_head_answers_like_get_without_a_body(client, pk, eileen):
    response = client.head("/v1/avatar", {"key": pk, "username": "eileen-collins"})
    assert response.status_code == 302 and response.content == b""


def test_if_none_match_gives_304_and_is_not_billed(client, pk, eileen, acme):
    etag = get(client, key=pk, username="eileen-collins")["ETag"]
    response = get(client, key=pk, username="eileen-collins", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert requests_used(acme) == 1


def test_png_on_request(client, pk, eileen):
    response = get(client, key=pk, username="eileen-collins", format="png", size="64")
    assert response.status_code == 302 and response["Location"].endswith(".png")
    image = client.get(response["Location"].removeprefix("http://testserver"))
    assert image["Content-Type"] == "image/png"


@pytest.mark.django_db(transaction=True)
def test_unknown_profile_gets_a_monogram_after_the_wait(client, pk, linkedin):
    linkedin.answer("nobody-here", 404)
    response = get(client, key=pk, username="nobody-here", size="64")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response["Cache-Control"] == "no-store"
    assert 'width="64"' in response.content.decode() and ">N<" in response.content.decode().replace("NH", "N")
    assert Profile.objects.get(handle="nobody-here").status == Profile.Status.NOT_FOUND


@pytest.mark.django_db(transaction=True)
def test_a_new_profile_is_enriched_then_served(client, pk, linkedin, acme):
    linkedin.profile("alex-rivera", photo_url=linkedin.photo("face.jpg"))
    response = get(client, key=pk, linkedin_url="linkedin.com/in/alex-rivera")
    assert response.status_code == 302
    period = UsagePeriod.objects.get(workspace=acme)
    assert period.avatar_new_profiles == 1
    get(client, key=pk, username="alex-rivera")
    period.refresh_from_db()
    assert period.avatar_new_profiles == 1  # the same profile counts once per cycle


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "Give a linkedin_url or a username."),
        ({"username": "eileen-collins", "linkedin_url": "linkedin.com/in/eileen-collins"}, "not both"),
        ({"linkedin_url": "https://www.linkedin.com/company/avtrz/"}, "company"),
        ({"linkedin_url": "https://example.com/in/someone"}, "LinkedIn"),
        ({"username": "eileen-collins", "size": "100"}, "size must be one of 32, 64, 128, 256, 512"),
        ({"username": "eileen-collins", "format": "gif"}, "format must be webp or png"),
    ],
)
def test_bad_parameters_are_400_with_a_message(client, pk, params, message):
    response = get(client, key=pk, **params)
    assert response.status_code == 400
    assert response["Cache-Control"] == "no-store"
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert message.lower() in error["message"].lower()


def test_errors_are_images_when_an_img_tag_asks(client, pk):
    response = get(client, key=pk, username="x", **IMG)
    assert response.status_code == 400
    assert response["Content-Type"] == "image/svg+xml"
    response = get(client, key="pk_live_nope_nope_nope_nope_nope", username="eileen-collins", **IMG)
    assert response.status_code == 401 and response["Content-Type"] == "image/svg+xml"


@pytest.mark.parametrize(
    ("key", "code"),
    [("", "missing_key"), ("pk_live_thisisnotakeyatallreally", "invalid_key"), ("garbage", "invalid_key")],
)
def test_bad_keys_are_401(client, eileen, key, code):
    response = get(client, key=key, username="eileen-collins")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


def test_secret_key_in_the_query_is_refused_but_works_in_the_header(client, sk, eileen):
    response = get(client, key=sk, username="eileen-collins")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "secret_key_in_query"
    assert sk not in response.content.decode()
    assert get(client, username="eileen-collins", HTTP_X_API_KEY=sk).status_code == 302


def test_revoking_a_key_takes_effect_at_once(client, pk, eileen, alice, django_capture_on_commit_callbacks):
    assert get(client, key=pk, username="eileen-collins").status_code == 302  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        services.revoke_api_key(actor=alice, key=ApiKey.objects.get())
    response = get(client, key=pk, username="eileen-collins")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_key"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"HTTP_ORIGIN": "https://app.example.com"}, 302),
        ({"HTTP_REFERER": "https://example.com/team?x=1"}, 302),
        ({"HTTP_REFERER": "https://www.shop.example.org/"}, 302),
        ({"HTTP_REFERER": "https://shop.example.org/"}, 401),  # *.x matches subdomains, not x itself
        ({"HTTP_ORIGIN": "https://evil.example.net"}, 401),
        ({"HTTP_REFERER": "https://example.com.evil.net/"}, 401),
        ({}, 401),  # no page to check: a locked key answers only pages it knows
    ],
)
def test_publishable_keys_answer_only_their_domains(client, acme, alice, eileen, headers, status):
    key = services.create_api_key(
        actor=alice,
        workspace=acme,
        kind="publishable",
        name="Site",
        domains=["example.com", "app.example.com", "*.shop.example.org"],
    )
    response = get(client, key=key, username="eileen-collins", **headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["code"] == "domain_not_allowed"


def test_request_quota_gives_402_and_never_admits_past_it(client, pk, eileen, acme):
    UsagePeriod.objects.filter(workspace=acme).delete()
    Plan.objects.filter(code="free").update(monthly_requests=3)
    statuses = [get(client, key=pk, username="eileen-collins").status_code for _ in range(5)]
    assert statuses == [302, 302, 302, 402, 402]
    response = get(client, key=pk, username="eileen-collins")
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded" and "Free plan" in error["message"] and "resets on" in error["message"]
    assert requests_used(acme) == 3


@pytest.mark.django_db(transaction=True)
def test_new_profile_quota_is_separate(client, pk, eileen, linkedin, acme):
    Plan.objects.filter(code="free").update(monthly_new_profiles=1)
    assert get(client, key=pk, username="eileen-collins").status_code == 302
    linkedin.answer("someone-else", 404)
    response = get(client, key=pk, username="someone-else")
    assert response.status_code == 402
    assert "new profiles" in response.json()["error"]["message"]
    assert get(client, key=pk, username="eileen-collins").status_code == 302  # known profiles still work
    assert requests_used(acme) == 2  # the refused lookup was not billed


def test_rate_limit_gives_429_with_retry_after(client, pk, eileen):
    Plan.objects.filter(code="free").update(requests_per_second=2, burst=2)
    responses = [get(client, key=pk, username="eileen-collins") for _ in range(4)]
    limited = [r for r in responses if r.status_code == 429]
    assert limited, [r.status_code for r in responses]
    assert limited[0]["Retry-After"] == "1"
    assert limited[0].json()["error"]["code"] == "rate_limited"


def test_a_cache_hit_costs_no_database_query(client, pk, eileen, django_assert_num_queries):
    get(client, key=pk, username="eileen-collins")  # warms the key and the profile
    with django_assert_num_queries(0):
        response = get(client, key=pk, username="eileen-collins")
    assert response.status_code == 302


def test_the_fast_path_answers_hits_and_hands_everything_else_on(pk, eileen, client, django_assert_num_queries):
    query = api.parse({"key": pk, "username": "eileen-collins"}, {}, method="GET")
    with pytest.raises(api.NeedsDatabase):
        api.answer(query, cached_only=True)  # cold key
    get(client, key=pk, username="eileen-collins")
    with django_assert_num_queries(0):
        result = api.answer(query, cached_only=True)
    assert result.status == 302 and result.billed
    unknown = api.parse({"key": pk, "username": "never-seen"}, {}, method="GET")
    with pytest.raises(api.NeedsDatabase):
        api.answer(unknown, cached_only=True)


def test_usage_endpoint_for_secret_keys(client, sk, pk, eileen, acme):
    get(client, key=pk, username="eileen-collins")
    response = client.get("/v1/usage", HTTP_X_API_KEY=sk)
    assert response.status_code == 200
    body = response.json()
    assert body["workspace"] == "acme" and body["plan"] == "Free"
    assert body["meters"]["avatar_requests"] == {"used": 1, "limit": 1000}
    assert body["meters"]["avatar_new_profiles"] == {"used": 1, "limit": 100}
    assert client.get("/v1/usage", HTTP_X_API_KEY=pk).json()["error"]["code"] == "secret_key_required"
    assert client.get("/v1/usage", {"key": sk}).json()["error"]["code"] == "secret_key_in_query"


def test_last_used_and_usage_are_written_to_the_database(client, pk, eileen, acme):
    get(client, key=pk, username="eileen-collins")
    get(client, key=pk, username="eileen-collins")
    usage.flush_now(force=True)
    assert UsagePeriod.objects.get(workspace=acme).avatar_requests == 2
    used = ApiKey.objects.get().last_used_at
    assert used is not None and (timezone.now() - used).total_seconds() < 60


def test_openapi_document_is_served(client):
    doc = client.get("/v1/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {"/v1/avatar", "/v1/usage"}


def test_answers_are_tallied_per_day_for_the_chart(client, pk, eileen, linkedin, acme, settings):
    from workspaces.models import DailyUsage

    linkedin.answer("nobody-at-all", 404)
    settings.AVTRZ_ENRICH_WAIT_S = 0
    get(client, key=pk, username="eileen-collins")
    get(client, key=pk, username="eileen-collins")
    get(client, key=pk, username="nobody-at-all")
    locked = services.create_api_key(actor=None, workspace=acme, kind="publishable", name="x", domains=["a.com"])
    get(client, key=locked, username="eileen-collins", HTTP_ORIGIN="https://b.com")
    usage.flush_now(force=True)
    day = DailyUsage.objects.get(workspace=acme)
    assert (day.api_hits, day.api_misses, day.refused_401) == (2, 1, 1)


def _fast(pk, **params):
    """One request through the ASGI fast path alone (Django behind it answers 599 if reached)."""
    import asyncio
    from urllib.parse import urlencode

    from avtrz.avatars.fastpath import AvatarFastPath

    sent = []

    async def django(scope, receive, send):
        await send({"type": "http.response.start", "status": 599, "headers": []})

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "path": "/v1/avatar",
        "method": "GET",
        "headers": [],
        "query_string": urlencode({"key": pk, **params}).encode(),
    }
    asyncio.run(AvatarFastPath(django)(scope, None, send))
    return sent[0]["status"], dict(sent[0]["headers"])


def test_the_fast_path_replays_a_redirect_and_still_counts_it(
    client, pk, eileen, acme, alice, django_capture_on_commit_callbacks
):
    get(client, key=pk, username="eileen-collins")  # warm: answered by Django
    first = _fast(pk, username="eileen-collins")
    replayed = [_fast(pk, username="eileen-collins") for _ in range(3)]
    assert first[0] == 302

    def same_answer(answer):  # RateLimit says what is left of the bucket: it changes every time
        status, headers = answer
        return status, {name: value for name, value in headers.items() if name != b"ratelimit"}

    assert all(same_answer(answer) == same_answer(first) for answer in replayed)
    assert requests_used(acme) == 5  # every replay passed the meter

    with django_capture_on_commit_callbacks(execute=True):
        services.revoke_api_key(actor=alice, key=ApiKey.objects.get())
    # The change ended the replay at once: the fast path no longer knows the key and hands the request
    # to Django (599 here), which answers 401.
    assert _fast(pk, username="eileen-collins")[0] == 599
    assert get(client, key=pk, username="eileen-collins").status_code == 401

"""The served OpenAPI document describes what the API really answers."""

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from workspaces.models import Plan


pytestmark = pytest.mark.django_db


@pytest.fixture
def spec(client):
    return client.get("/v1/openapi.json").json()


def check(spec, path: str, response) -> None:
    """Assert the status is documented for the path and the body matches the documented schema."""
    operation = spec["paths"][path]["get"]
    documented = operation["responses"]
    assert str(response.status_code) in documented, f"{path} answered undocumented {response.status_code}"
    entry = documented[str(response.status_code)]
    for header, described in entry.get("headers", {}).items():
        if described.get("required", True):  # documented as sometimes there: not asserted
            assert header in response, f"{path} {response.status_code} lacks {header}"
    content_type = response.get("Content-Type", "").split(";")[0]
    if not response.content:
        return
    assert content_type in entry.get("content", {}), f"{path} {response.status_code} sent {content_type}"
    if content_type == "application/json":
        registry = Registry().with_resource("urn:spec", Resource.opaque(spec))
        schema = {**entry["content"][content_type]["schema"]}
        if "$ref" in schema:
            schema = {"$ref": "urn:spec" + schema["$ref"]}
        Draft202012Validator(schema, registry=registry).validate(response.json())


def test_every_avatar_answer_matches_the_document(client, spec, pk, sk, eileen, linkedin):
    linkedin.answer("nobody", 404)
    answers = [
        client.get("/v1/avatar", {"key": pk, "username": "eileen-collins"}),
        client.get("/v1/avatar", {"key": pk, "username": "nobody"}),
        client.get("/v1/avatar", {"key": pk, "username": "x"}),
        client.get("/v1/avatar", {"key": pk, "username": "eileen-collins", "size": "7"}),
        client.get("/v1/avatar", {"username": "eileen-collins"}),
        client.get("/v1/avatar", {"key": sk, "username": "eileen-collins"}),
        client.get("/v1/avatar", {"key": "pk_live_nothing_nothing_nothing", "username": "eileen-collins"}),
        client.get("/v1/avatar", {"key": pk, "username": "eileen-collins"}, HTTP_ACCEPT="image/*"),
    ]
    etag = answers[0]["ETag"]
    answers.append(client.get("/v1/avatar", {"key": pk, "username": "eileen-collins"}, HTTP_IF_NONE_MATCH=etag))
    Plan.objects.filter(code="free").update(requests_per_second=1, burst=1)
    answers += [client.get("/v1/avatar", {"username": "eileen-collins"}, HTTP_X_API_KEY=sk) for _ in range(3)]
    statuses = {a.status_code for a in answers}
    assert {302, 304, 200, 400, 401}.issubset(statuses)
    for response in answers:
        check(spec, "/v1/avatar", response)


def test_quota_and_rate_answers_match_the_document(client, spec, pk, eileen, acme):
    Plan.objects.filter(code="free").update(monthly_requests=1, requests_per_second=1000)
    acme.usage_periods.all().delete()
    client.get("/v1/avatar", {"key": pk, "username": "eileen-collins"})
    over = client.get("/v1/avatar", {"key": pk, "username": "eileen-collins"})
    assert over.status_code == 402
    check(spec, "/v1/avatar", over)


def test_usage_answers_match_the_document(client, spec, sk, pk):
    for response in [
        client.get("/v1/usage", HTTP_X_API_KEY=sk),
        client.get("/v1/usage", HTTP_X_API_KEY=pk),
        client.get("/v1/usage"),
    ]:
        check(spec, "/v1/usage", response)

"""Hostile input for `/v1/*`: schemathesis generates requests from the served OpenAPI document and
checks every answer: no server error, and status, content type and body as documented."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)


pytestmark = pytest.mark.django_db

# What the contract promises for any request. (Whether a schema-valid request is accepted is not one of
# them: "a string" is a valid linkedin_url in the schema, and most strings are not a profile URL.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

app = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", app)


@pytest.fixture
def keys(pk, sk, eileen):
    # The WSGI handler closes database connections after each request; inside a test transaction that
    # would close the test's own connection, so detach it as Django's test client does.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield {"publishable": pk, "secret": sk}
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_answers_every_request_as_documented(case, keys):
    # Half the requests carry a real key, so the checks reach past authentication.
    if case.query is not None and case.query.get("key") == "":
        case.query["key"] = keys["publishable"]
    if case.headers is not None and case.headers.get("x-api-key") == "":
        case.headers["x-api-key"] = keys["secret"]
    case.call_and_validate(checks=CHECKS)

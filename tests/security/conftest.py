import pytest

from avtrz.avatars.directory import import_profile
from tests.avatars.conftest import IMAGES
from workspaces import services
from workspaces.models import ApiKey, Plan


@pytest.fixture
def acme(acme):
    """Acme with a rate limit no test hits by accident: the limits under test here are per address."""
    Plan.objects.filter(code="free").update(requests_per_second=1000)
    acme.plan.refresh_from_db()
    return acme


@pytest.fixture
def pk(acme, alice):
    return services.create_api_key(actor=alice, workspace=acme, kind=ApiKey.Kind.PUBLISHABLE, name="Web")


@pytest.fixture
def sk(acme, alice):
    return services.create_api_key(actor=alice, workspace=acme, kind=ApiKey.Kind.SECRET, name="Server")


@pytest.fixture
def eileen(db, django_capture_on_commit_callbacks, settings):
    settings.AVTRZ_IMAGE_BASE_URL = "http://testserver/img/"
    with django_capture_on_commit_callbacks(execute=True):
        return import_profile(
            {"handle": "eileen-collins", "name": "Eileen Collins", "photo_file": "face.jpg"}, base_dir=IMAGES
        )

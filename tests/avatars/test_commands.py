import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from avtrz.avatars.models import Profile
from tests.avatars.conftest import IMAGES
from workspaces.models import ApiKey, AuditEvent, key_digest


pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_api_key_prints_only_the_key(acme):
    out, _ = run("create_api_key", "--workspace", "acme", "--kind", "publishable", "--domain", "example.com")
    raw = out.strip()
    assert raw.startswith("pk_live_") and "\n" not in raw
    key = ApiKey.objects.get()
    assert key.digest == key_digest(raw) and raw not in (key.prefix + key.last4 + key.name)
    assert key.allowed_domains == ["example.com"]
    # Avtrz acted, not a person: the audit row has no actor and says so.
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEY_CREATED)
    assert (event.workspace, event.actor, event.summary) == (acme, None, f"Avtrz created publishable key {key.masked}")


def test_create_api_key_explains_mistakes(acme):
    with pytest.raises(CommandError, match="No workspace"):
        run("create_api_key", "--workspace", "nope", "--kind", "secret")
    with pytest.raises(CommandError, match="not a host name|host name only"):
        run("create_api_key", "--workspace", "acme", "--kind", "publishable", "--domain", "https://x.com/a")
    assert not ApiKey.objects.exists()


def test_import_profiles_reports_bad_rows_and_keeps_going(tmp_path, django_capture_on_commit_callbacks):
    shutil.copy(IMAGES / "face.jpg", tmp_path / "face.jpg")
    (tmp_path / "people.jsonl").write_text(
        "\n".join(
            [
                json.dumps(
                    {"linkedin_url": "https://www.linkedin.com/in/ada-l/", "name": "Ada L", "photo_file": "face.jpg"}
                ),
                "not json",
                json.dumps({"linkedin_url": "https://www.linkedin.com/company/acme"}),
                json.dumps({"handle": "no-photo-person", "name": "No Photo", "open_to_work": "true"}),
                json.dumps({"handle": "escaper", "photo_file": "../../etc/passwd"}),
            ]
        )
    )
    with django_capture_on_commit_callbacks(execute=True):
        out, err = run("import_profiles", str(tmp_path / "people.jsonl"))
    assert "Imported 2 profile(s), 3 row(s) refused." in out
    assert "people.jsonl:2: not valid JSON" in err
    assert "people.jsonl:3:" in err and "company" in err.lower()
    assert "people.jsonl:5:" in err
    ada = Profile.objects.get(handle="ada-l")
    assert ada.status == Profile.Status.RESOLVED and ada.current_image.face_detected
    assert Profile.objects.get(handle="no-photo-person").open_to_work is True


def test_import_profiles_csv(tmp_path):
    (tmp_path / "people.csv").write_text("handle,name,headline\nbea-k,Bea K,CTO\n,,\n")
    out, err = run("import_profiles", str(tmp_path / "people.csv"))
    assert "Imported 1 profile(s), 1 row(s) refused." in out
    assert Profile.objects.get(handle="bea-k").headline == "CTO"


def test_load_demo_is_idempotent_and_prints_a_working_key(settings, client):
    settings.DEBUG = True
    first, _ = run("load_demo")
    second, _ = run("load_demo")
    key = next(line.split()[-1] for line in first.splitlines() if line.startswith("Demo publishable key"))
    assert key in second
    assert ApiKey.objects.count() == 1
    assert Profile.objects.filter(current_image__isnull=False).count() == 3
    response = client.get("/v1/avatar", {"key": key, "username": "eileen-collins", "size": "256"})
    assert response.status_code == 302


def test_load_demo_re_frames_demo_avatars_made_with_the_old_rule(settings, django_capture_on_commit_callbacks):
    from avtrz.avatars.models import AvatarImage

    settings.DEBUG = True
    run("load_demo")
    AvatarImage.objects.update(framing_version=1)
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run("load_demo")
    assert "Re-framed 3 demo avatar(s)" in out
    assert not AvatarImage.objects.filter(framing_version=1).exists()


def test_load_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        run("load_demo")


def test_demo_images_are_documented():
    demo = Path(__file__).resolve().parents[2] / "avtrz" / "avatars" / "demo"
    readme = (demo / "README.md").read_text()
    for image in demo.glob("*.[jp][pn]g"):
        assert image.name in readme

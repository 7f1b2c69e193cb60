import hashlib
import hmac
import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from avtrz.avatars import crops
from avtrz.avatars.directory import ImportError_, import_profile
from workspaces.models import ApiKey, Membership, Plan, Workspace, key_digest


DEMO_EMAIL = "demo@avtrz.local"
DEMO_PASSWORD = "avtrz-demo-2026"  # noqa: S105 (published on purpose; refused when DEBUG is off)
DEMO_SLUG = "demo"
DEMO_DIRECTORY = Path(__file__).resolve().parents[2] / "demo" / "profiles.jsonl"


def demo_publishable_key() -> str:
    """The same demo key on every run (derived from SECRET_KEY), so it can be printed each time
    while only its digest is stored."""
    token = hmac.new(settings.SECRET_KEY.encode(), b"avtrz demo publishable key", hashlib.sha256).hexdigest()
    return f"pk_live_demo{token[:28]}"


class Command(BaseCommand):
    help = "Create (or repair) the demo user, workspace, publishable key and profile directory. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Allow running with DEBUG off.")

    def handle(self, *args, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError("load_demo creates a user with a published password; run it with DEBUG on.")
        with transaction.atomic():
            raw_key = self._account()
        handles = []
        for line in DEMO_DIRECTORY.read_text().splitlines():
            try:
                handles.append(import_profile(json.loads(line), base_dir=DEMO_DIRECTORY.parent).handle)
            except ImportError_ as exc:  # a demo person removed on the removal page stays removed
                self.stdout.write(f"Skipped a demo profile: {exc}.")
        # A database made before the face framing keeps its demo images (same photos): re-frame them.
        rerendered, _ = crops.rerender_outdated(handles=handles)
        if rerendered:
            self.stdout.write(f"Re-framed {rerendered} demo avatar(s) with the current framing rule.")
        base = settings.PUBLIC_BASE_URL
        self.stdout.write(f"Demo login:            {DEMO_EMAIL} / {DEMO_PASSWORD} (workspace '{DEMO_SLUG}')")
        self.stdout.write(f"Demo publishable key:  {raw_key}")
        self.stdout.write(f"Try:                   {base}/v1/avatar?key={raw_key}&username=eileen-collins&size=256")

    def _account(self) -> str:
        user, _ = User.objects.get_or_create(email=DEMO_EMAIL, defaults={"name": "Demo User"})
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
        workspace, _ = Workspace.objects.get_or_create(
            slug=DEMO_SLUG, defaults={"name": "Demo workspace", "plan": Plan.default()}
        )
        Membership.objects.update_or_create(user=user, workspace=workspace, defaults={"role": Membership.Role.OWNER})
        raw = demo_publishable_key()
        if not ApiKey.objects.filter(digest=key_digest(raw)).exists():
            key = ApiKey(workspace=workspace, kind=ApiKey.Kind.PUBLISHABLE, name="Demo key", created_by=user)
            key.issue(raw)
            key.save()
        return raw

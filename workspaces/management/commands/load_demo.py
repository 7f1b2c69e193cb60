from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from workspaces.models import Membership, Plan, Workspace


DEMO_EMAIL = "demo@avtrz.local"
DEMO_PASSWORD = "avtrz-demo-2026"  # noqa: S105 (published on purpose; refused when DEBUG is off)
DEMO_SLUG = "demo"


class Command(BaseCommand):
    help = "Create (or repair) the demo user and the demo workspace. Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Allow running with DEBUG off.")

    @transaction.atomic
    def handle(self, *args, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError("load_demo creates a user with a published password; run it with DEBUG on.")
        user, _ = User.objects.get_or_create(email=DEMO_EMAIL, defaults={"name": "Demo User"})
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
        workspace, _ = Workspace.objects.get_or_create(
            slug=DEMO_SLUG, defaults={"name": "Demo workspace", "plan": Plan.default()}
        )
        Membership.objects.update_or_create(user=user, workspace=workspace, defaults={"role": Membership.Role.OWNER})
        self.stdout.write(f"Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD} (workspace '{DEMO_SLUG}')")

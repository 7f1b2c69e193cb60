import getpass
import os

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from workspaces import services


User = get_user_model()
PASSWORD_VARIABLE = "AVTRZ_OWNER_PASSWORD"  # noqa: S105 (the variable's name, not a password)


class Command(BaseCommand):
    help = (
        "Create a workspace and its owner (a new account, or an existing one by email) and print the "
        "workspace's slug, alone, on stdout. A new owner's password is asked for, or read from "
        f"{PASSWORD_VARIABLE} with --no-input."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="The workspace's name.")
        parser.add_argument("--owner", required=True, help="The owner's email address.")
        parser.add_argument(
            "--no-input",
            action="store_false",
            dest="interactive",
            help=f"Take a new owner's password from {PASSWORD_VARIABLE}.",
        )

    def handle(self, *args, name: str, owner: str, interactive: bool, **options):
        email = owner.strip().lower()
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{owner!r} is not an email address.") from None
        user = User.objects.filter(email__iexact=email).first()
        password = None if user else self._new_password(email, interactive)
        try:
            with transaction.atomic():
                if user is None:
                    user = User.objects.create_user(email, password)
                workspace = services.create_workspace(owner=user, name=name)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stderr.write(f"Created {workspace.name} ({workspace.slug}), owned by {user.email}.")
        self.stdout.write(workspace.slug)

    def _new_password(self, email: str, interactive: bool) -> str:
        if interactive:
            password = getpass.getpass(f"Password for the new account {email}: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("The passwords do not match.")
        else:
            password = os.environ.get(PASSWORD_VARIABLE, "")
            if not password:
                raise CommandError(f"{email} has no account yet: set {PASSWORD_VARIABLE} to its password.")
        try:
            password_validation.validate_password(password, User(email=email))
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        return password

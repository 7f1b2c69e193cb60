from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from workspaces import services
from workspaces.models import ApiKey, Workspace


class Command(BaseCommand):
    help = "Create an API key for a workspace and print it (alone, on stdout). It is shown only this once."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", required=True, help="The workspace slug.")
        parser.add_argument("--kind", required=True, choices=[k.value for k in ApiKey.Kind])
        parser.add_argument("--name", default="", help="A name to recognise the key by.")
        parser.add_argument("--domain", action="append", default=[], help="An allowed domain (publishable keys).")

    def handle(self, *args, workspace: str, kind: str, name: str, domain: list[str], **options):
        found = Workspace.objects.filter(slug=workspace).first()
        if found is None:
            raise CommandError(f"No workspace with the slug {workspace!r}.")
        if domain and kind == ApiKey.Kind.SECRET:
            raise CommandError("Secret keys are not domain-locked; --domain is for publishable keys.")
        try:
            raw = services.create_api_key(actor=None, workspace=found, kind=kind, name=name, domains=domain)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(raw)

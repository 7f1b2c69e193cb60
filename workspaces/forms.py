from django import forms
from django.core.exceptions import ValidationError

from avtrz.lib.validators import no_control_characters
from workspaces import services
from workspaces.models import ApiKey, Membership, Plan


class WorkspaceNameForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        label="Workspace name",
        validators=[no_control_characters],
        help_text="Usually your company or project. You can rename it later.",
        widget=forms.TextInput(attrs={"autofocus": True, "placeholder": "Acme Inc."}),
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the workspace a name.")
        return name


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email address", widget=forms.EmailInput(attrs={"placeholder": "name@company.com"}))
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


DOMAINS_HELP = (
    "Sites the key works on, one per line: <code>example.com</code> or <code>*.example.com</code> for its "
    "subdomains. Leave empty to allow any site (anyone who copies the key can then spend your quota)."
)


def _domains_field() -> forms.CharField:
    return forms.CharField(
        required=False,
        label="Allowed domains",
        help_text=DOMAINS_HELP,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "example.com\n*.example.com", "spellcheck": "false"}),
    )


def _clean_domains(value: str) -> list[str]:
    try:
        return services.clean_domains(value)
    except ValidationError as exc:
        raise forms.ValidationError(exc.messages) from None


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        required=False,
        label="Name",
        validators=[no_control_characters],
        help_text="So you recognise it later, e.g. “Marketing site” or “CRM sync”.",
        widget=forms.TextInput(attrs={"placeholder": "Marketing site"}),
    )
    kind = forms.ChoiceField(
        label="Kind",
        choices=[
            (ApiKey.Kind.PUBLISHABLE, "Publishable (pk_live_…), for web pages"),
            (ApiKey.Kind.SECRET, "Secret (sk_live_…), for servers"),
        ],
        initial=ApiKey.Kind.PUBLISHABLE,
        help_text="Publishable keys may sit in pages and &lt;img&gt; tags; secret keys never leave your servers.",
    )
    domains = _domains_field()

    def clean_domains(self) -> list[str]:
        return _clean_domains(self.cleaned_data["domains"])


class KeyDomainsForm(forms.Form):
    domains = _domains_field()

    def clean_domains(self) -> list[str]:
        return _clean_domains(self.cleaned_data["domains"])


class PlanForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.filter(is_public=True), to_field_name="code")

from django import forms

from workspaces.models import Membership


class WorkspaceNameForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        label="Workspace name",
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

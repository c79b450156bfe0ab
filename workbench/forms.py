from __future__ import annotations

import uuid

from django import forms

from .models import CredentialRole, Role


class CredentialCreateForm(forms.Form):
    # One submission creates one credential: reloading the "created" page resends the
    # POST with the same nonce, which is then refused instead of issuing a second secret.
    nonce = forms.CharField(widget=forms.HiddenInput, initial=lambda: uuid.uuid4().hex, required=False)
    role = forms.ChoiceField(choices=CredentialRole.choices, initial=CredentialRole.EVENTS)
    label = forms.CharField(max_length=200, required=False, help_text="Where it is used, e.g. 'CRM sync'.")


class MemberAddForm(forms.Form):
    identifier = forms.CharField(
        label="Username or email",
        max_length=254,
        error_messages={"required": "Type the username or email of an existing account."},
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.EDITOR)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


ROLE_DESCRIPTIONS = {
    Role.OWNER: "Everything editors do, plus members, API credentials and environment settings.",
    Role.EDITOR: "Builds, tests and publishes flows, manages triggers and test users.",
    Role.VIEWER: "Sees flows, customers and activity; changes nothing.",
}

from __future__ import annotations

import uuid

from django import forms

from .models import CredentialRole


class CredentialCreateForm(forms.Form):
    # One submission creates one credential: reloading the "created" page resends the
    # POST with the same nonce, which is then refused instead of issuing a second secret.
    nonce = forms.CharField(widget=forms.HiddenInput, initial=lambda: uuid.uuid4().hex, required=False)
    role = forms.ChoiceField(choices=CredentialRole.choices, initial=CredentialRole.EVENTS)
    label = forms.CharField(max_length=200, required=False, help_text="Where it is used, e.g. 'CRM sync'.")

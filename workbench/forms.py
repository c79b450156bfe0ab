from __future__ import annotations

from django import forms

from .models import CredentialRole


class CredentialCreateForm(forms.Form):
    role = forms.ChoiceField(choices=CredentialRole.choices, initial=CredentialRole.EVENTS)
    label = forms.CharField(max_length=200, required=False, help_text="Where it is used, e.g. 'CRM sync'.")

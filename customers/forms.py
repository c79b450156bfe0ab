from __future__ import annotations

from django import forms


class TestUserForm(forms.Form):
    user_id = forms.CharField(label="User ID", max_length=255)
    name = forms.CharField(max_length=255, required=False)


class MyTestUserForm(forms.Form):
    user_id = forms.CharField(
        label="My test user ID",
        max_length=255,
        required=False,
        help_text="The userId you are signed in with in the app, to receive your own tests. Empty to clear.",
    )

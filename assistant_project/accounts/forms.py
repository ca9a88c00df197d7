from django import forms


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True)
    expires_at = forms.DateTimeField(required=False, help_text="Optional expiry (UTC).")

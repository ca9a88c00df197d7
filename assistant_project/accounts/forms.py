from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True)
    expires_at = forms.DateTimeField(required=False, help_text="Optional expiry (UTC).")


class LoginLimitMixin:
    """Refuses sign-in after too many failures for one account or from one address, counted in
    Redis (shared by every web process) over LOGIN_LOCKOUT_SECONDS."""

    request: Any
    cleaned_data: dict[str, Any]

    def _keys(self) -> tuple[str, str]:
        username = str(self.data.get("username", "")).strip().lower()[:150]  # type: ignore[attr-defined]
        address = (self.request.META.get("REMOTE_ADDR", "") if self.request is not None else "")[:64]
        return f"login:fail:user:{username}", f"login:fail:ip:{address}"

    def clean(self) -> dict[str, Any]:
        account, address = self._keys()
        if (cache.get(account) or 0) >= settings.LOGIN_MAX_FAILURES or (
            cache.get(address) or 0
        ) >= settings.LOGIN_MAX_FAILURES_PER_ADDRESS:
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            raise forms.ValidationError(
                f"Too many failed sign-in attempts. Try again in {minutes} minutes.", code="rate_limited"
            )
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except forms.ValidationError:
            for key in (account, address):
                cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
                cache.incr(key)
            raise
        cache.delete(account)
        return cleaned


class LimitedAuthenticationForm(LoginLimitMixin, AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Your username and password did not match. Please try again.",
    }


class LimitedAdminAuthenticationForm(LoginLimitMixin, AdminAuthenticationForm):
    pass

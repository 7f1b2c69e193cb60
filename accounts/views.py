from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.hashers import make_password
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme, urlsafe_base64_decode
from django.views.decorators.http import require_http_methods

from accounts import signup as signup_flow
from accounts.forms import SignInForm, SignUpForm
from accounts.models import User
from avtrz.lib import throttle


def safe_next(request: HttpRequest, default: str) -> str:
    """The `next` target if it stays on this site, else the default: no open redirects."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Every valid sign-up answers "check your inbox", whether or not the email has an account
    (accounts.signup); only an invitation to that very address signs in at once."""
    if request.user.is_authenticated:
        return redirect(safe_next(request, reverse("workspaces:home")))
    next_url = safe_next(request, "")
    invitation = signup_flow.invitation_at(next_url)
    form = SignUpForm(request.POST or None, initial={"email": invitation.email} if invitation else {})
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        existing = User.objects.filter(email__iexact=email).first()
        if existing is not None and existing.is_active:
            make_password(form.cleaned_data["password1"])  # the same hashing time as a new account: no timing tell
            signup_flow.send_already_registered(existing)
        else:
            user = form.save(commit=False)
            if existing is not None:  # signed up before without following the link: this try wins
                existing.name = user.name
                existing.set_password(form.cleaned_data["password1"])
                user = existing
            invited = signup_flow.invitation_for(next_url, email)
            user.is_active = invited is not None  # the invitation link already proved the mailbox
            user.save()
            if invited is not None:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, f"Welcome to Avtrz. Accept the invitation to join {invited.workspace.name}.")
                return redirect(next_url)
            signup_flow.send_activation(user, next_url)
        request.session["signup_email"] = email
        return redirect("accounts:signup_sent")
    return render(request, "accounts/signup.html", {"form": form, "next": next_url, "invitation": invitation})


def signup_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/signup_sent.html", {"email": request.session.get("signup_email", "")})


def activate(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """Follow the emailed link: the account becomes active and is signed in; the link then dies."""
    try:
        user = User.objects.get(pk=urlsafe_base64_decode(uidb64).decode())
    except (User.DoesNotExist, ValueError, TypeError, OverflowError):
        user = None
    if user is None or user.is_active or not signup_flow.activation_tokens.check_token(user, token):
        return render(request, "accounts/activate_invalid.html", status=400)
    user.is_active = True
    user.save(update_fields=["is_active"])
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    invitation = signup_flow.invitation_at(safe_next(request, ""))
    if invitation is not None:
        messages.success(request, f"Welcome to Avtrz. Accept the invitation to join {invitation.workspace.name}.")
    else:
        messages.success(request, "Welcome to Avtrz. Create a workspace to get your API keys.")
    return redirect(safe_next(request, reverse("workspaces:create")))


signin = auth_views.LoginView.as_view(
    template_name="accounts/login.html", authentication_form=SignInForm, redirect_authenticated_user=True
)
signout = auth_views.LogoutView.as_view()
password_change = auth_views.PasswordChangeView.as_view(
    template_name="accounts/password_change.html", success_url=reverse_lazy("accounts:password_change_done")
)
password_change_done = auth_views.PasswordChangeDoneView.as_view(template_name="accounts/password_change_done.html")


class ThrottledPasswordResetView(auth_views.PasswordResetView):
    """Reset mails limited per email and per address.

    Past the email's limit nothing more is sent but the answer is the usual "check your inbox", so the
    limit says nothing about whether the email has an account; past the address's limit the form says
    to wait, whatever the email.
    """

    @property
    def extra_email_context(self) -> dict:
        # Links point at the public origin, never at whatever Host header the request carried.
        return {"base_url": settings.PUBLIC_BASE_URL}

    def form_valid(self, form):
        window = settings.PASSWORD_RESET_WINDOW_S
        address = throttle.hit("reset-ip", throttle.client_ip(self.request), window)
        if address.count > settings.PASSWORD_RESET_ADDRESS_LIMIT:
            minutes = max(1, round(address.retry_after / 60))
            form.add_error(None, f"Too many password reset requests. Try again in {minutes} minutes.")
            response = self.form_invalid(form)
            response.status_code = 429
            return response
        email = form.cleaned_data["email"].strip().lower()
        if throttle.hit("reset-email", email, window).count > settings.PASSWORD_RESET_EMAIL_LIMIT:
            return redirect(self.get_success_url())
        return super().form_valid(form)


password_reset = ThrottledPasswordResetView.as_view(
    template_name="accounts/password_reset.html",
    email_template_name="emails/password_reset_body.txt",
    subject_template_name="emails/password_reset_subject.txt",
    success_url=reverse_lazy("accounts:password_reset_done"),
)


password_reset_done = auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html")
password_reset_confirm = auth_views.PasswordResetConfirmView.as_view(
    template_name="accounts/password_reset_confirm.html", success_url=reverse_lazy("accounts:password_reset_complete")
)
password_reset_complete = auth_views.PasswordResetCompleteView.as_view(
    template_name="accounts/password_reset_complete.html"
)

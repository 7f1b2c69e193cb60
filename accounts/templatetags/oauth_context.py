from django import template

from accounts.waiting import waiting_app as _waiting_app


register = template.Library()


@register.simple_tag
def waiting_app(next_url):
    """``{% waiting_app next as app %}``: the app waiting to connect behind this sign-in, or None."""
    return _waiting_app(next_url)

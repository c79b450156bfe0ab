"""Card buttons open web pages and apps, never code or local files (issue 9, item 11).

Deep links (`myapp://…`) are a product feature; `javascript:`, `vbscript:`, `data:` and
`file:` are refused in every spelling a browser or an HTML-rendering app would still obey:
any case, with or without `//`, after white space or control characters, with tabs or
newlines inside, or written with character references.
"""

from __future__ import annotations

import pytest

from flows.definitions import definition_clean, is_safe_link
from flows.forms import safe_href
from workbench.errors import Invalid

UNSAFE = [
    "javascript:alert(1)",
    "javascript://%0Aalert(1)",
    "JaVaScRiPt://x%0aalert(1)",
    " javascript://x",
    "\x01javascript://x",
    "java\tscript://x",
    "java\nscript://x",
    "&#106;avascript://x",
    "&#x6A;avascript://x",
    "javascript&colon;//x",
    "&amp;#106;avascript://x",
    "vbscript://x",
    "VBScript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "data://text/html,x",
    "file:///etc/passwd",
    "FILE://server/share",
    "file:/etc/passwd",
]
SAFE = ["https://example.com/offer?a=1&b=2", "http://example.com", "myapp://offers/7", "com.acme.app://open"]


def definition_with_button(url: str) -> dict:
    return {"type": "send_card", "card": {"title": "Open", "actions": [{"label": "Go", "url": url}]}}


@pytest.mark.parametrize("url", UNSAFE)
def test_an_unsafe_link_is_refused_when_the_flow_is_saved(url: str) -> None:
    with pytest.raises(Invalid) as refused:
        definition_clean([], [definition_with_button(url)])

    assert list(refused.value.errors) == ["steps.0.card.actions.0.url"]


@pytest.mark.parametrize("url", UNSAFE)
def test_an_unsafe_link_is_never_an_href_or_delivered(url: str) -> None:
    assert not is_safe_link(url)
    assert safe_href(url) is None


@pytest.mark.parametrize("url", SAFE)
def test_web_and_app_links_are_kept(url: str) -> None:
    assert definition_clean([], [definition_with_button(url)])["steps"][0]["card"]["actions"][0]["url"] == url
    assert is_safe_link(url)
    assert safe_href(f" {url} ") == url


@pytest.mark.parametrize(
    "url", ["javascript:{{target}}", " vbscript:{{x}}", "file://{{path}}", "&#106;avascript:{{x}}"]
)
def test_a_template_that_already_names_an_unsafe_scheme_is_refused(url: str) -> None:
    variables = [{"name": name} for name in ("target", "x", "path")]

    with pytest.raises(Invalid):
        definition_clean(variables, [definition_with_button(url)])


@pytest.mark.parametrize("url", ["{{link}}", "https://{{host}}/offers", "myapp://offers/{{id}}"])
def test_a_template_whose_variables_decide_the_link_is_accepted_and_checked_at_delivery(url: str) -> None:
    variables = [{"name": name} for name in ("link", "host", "id")]

    assert definition_clean(variables, [definition_with_button(url)])["steps"][0]["card"]["actions"][0]["url"] == url

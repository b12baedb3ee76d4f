"""Screens in Japanese (the default) or English, chosen by the ``lang`` cookie.

Every organisation's pages build their ``Jinja2Templates`` through :func:`templates`, which installs
``jinja2.ext.i18n`` with callables that read the language from the request being rendered, offers
``lang`` and ``lang_next`` to every template (for ``<html lang>`` and the header's toggle,
``lang_toggle.html``) and adds ``POST /lang`` to the app once: it sets the cookie and returns to a
local path only.

Message ids are the Japanese text itself, so Japanese needs no catalogue and a missing English
entry shows Japanese rather than nothing.  The English catalogue is the text file
``locale/en.po`` beside this module, read with Babel when first needed (no compiled ``.mo``).
Templates use ``_("…")``; vocabulary handed over from Python (roles, statuses, purposes …) goes
through the ``label`` filter.  Data — names, addresses, notice texts — is never translated.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from babel.messages.pofile import read_po
from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader, pass_context
from jinja2.runtime import Context

from kojinbango.domain.jst import jst_text

COOKIE = "lang"
DEFAULT = "ja"
LANGUAGES = ("ja", "en")
LOCALE_DIR = Path(__file__).parent / "locale"
# Shared snippets (the toggle) every template directory can include.
SHARED_TEMPLATES = Path(__file__).parent / "templates"
ONE_YEAR = 365 * 24 * 3600


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """msgid → translation for ``lang`` (empty for Japanese); fuzzy or empty entries are left out."""
    if lang == DEFAULT:
        return {}
    with (LOCALE_DIR / f"{lang}.po").open("rb") as f:
        cat = read_po(f, locale=lang)
    return {
        m.id: m.string
        for m in cat
        if isinstance(m.id, str) and m.id and isinstance(m.string, str) and m.string and not m.fuzzy
    }


def language(request: Request | None) -> str:
    if request is None:
        return DEFAULT
    chosen = request.cookies.get(COOKIE, DEFAULT)
    return chosen if chosen in LANGUAGES else DEFAULT


def translate(text: str, lang: str) -> str:
    return catalogue(lang).get(text, text) if lang != DEFAULT else text


def label(text: Any, lang: str) -> Any:
    """A word of vocabulary from Python; ``A・B`` lists (role labels) are translated part by part."""
    if not isinstance(text, str) or lang == DEFAULT:
        return text
    cat = catalogue(lang)
    if text in cat:
        return cat[text]
    if "・" in text:
        return " / ".join(cat.get(part, part) for part in text.split("・"))
    return text


def _request_of(ctx: Context) -> Request | None:
    request = ctx.get("request")
    return request if isinstance(request, Request) else None


@pass_context
def _gettext(ctx: Context, text: str) -> str:
    return translate(text, language(_request_of(ctx)))


@pass_context
def _ngettext(ctx: Context, singular: str, plural: str, n: int) -> str:
    # Japanese has no plural forms; English entries here are written without a count's plural.
    return translate(singular if n == 1 else plural, language(_request_of(ctx)))


@pass_context
def _label(ctx: Context, text: Any) -> Any:
    return label(text, language(_request_of(ctx)))


def safe_next(target: str) -> str:
    """Only a path on this site (``/…``, not ``//host`` or ``/\\host``); anything else → ``/``."""
    if not target.startswith("/") or target.startswith(("//", "/\\")) or any(c in target for c in "\r\n\\"):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _next_of(request: Request) -> str:
    """Where the toggle returns: this page, or for a page answering a POST the page that sent it."""
    if request.method == "GET":
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return safe_next(here)
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path:
        return safe_next(referer.path + (f"?{referer.query}" if referer.query else ""))
    return "/"


def _context(request: Request) -> dict[str, Any]:
    return {"lang": language(request), "lang_next": _next_of(request)}


def templates(app: FastAPI, directory: Path, *also: Path) -> Jinja2Templates:
    """The templates of one package, translated; installs ``POST /lang`` on ``app`` once.  ``also``:
    further directories its templates may extend or include (after its own, before the shared)."""
    t = Jinja2Templates(directory=str(directory), context_processors=[_context])
    t.env.loader = ChoiceLoader([FileSystemLoader(str(d)) for d in (directory, *also, SHARED_TEMPLATES)])
    t.env.add_extension("jinja2.ext.i18n")
    t.env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    t.env.filters["label"] = _label
    t.env.filters["jst"] = jst_text  # stored times are UTC; people read them in Japan time
    install_toggle(app)
    return t


def install_toggle(app: FastAPI) -> None:
    if getattr(app.state, "lang_toggle", False):
        return
    app.state.lang_toggle = True

    @app.post("/lang", include_in_schema=False)
    def choose(lang: str = Form(DEFAULT), next: str = Form("/")) -> RedirectResponse:  # noqa: A002
        resp = RedirectResponse(safe_next(next), status_code=303)
        resp.set_cookie(
            COOKIE, lang if lang in LANGUAGES else DEFAULT, max_age=ONE_YEAR, samesite="lax", httponly=True
        )
        return resp


def template_files() -> list[Path]:
    """Every template of the package (each organisation's ``templates/`` and the shared ones)."""
    return sorted(Path(__file__).parents[1].glob("**/templates/*.html"))


def template_messages(path: Path) -> list[tuple[int, str]]:
    """(line, msgid) of every ``_("…")`` in one template, as Babel's Jinja extractor reads them."""
    from jinja2.ext import babel_extract

    found: list[tuple[int, str]] = []
    with path.open("rb") as f:
        for line, _func, message, _comments in babel_extract(f, ("_", "gettext", "ngettext"), [], {}):
            for text in message if isinstance(message, tuple) else (message,):
                if text:
                    found.append((line, text))
    return found

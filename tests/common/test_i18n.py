"""The English catalogue: every message of every template is translated, the templates marked done
have no Japanese left outside ``_("…")``, the vocabulary handed over from Python is translated, and
the toggle sets the cookie and returns only to a local path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from kojinbango.common import i18n

ROOT = Path(i18n.__file__).parents[1]
PO = ROOT / "common" / "locale" / "en.po"
# Kana and kanji; full-width punctuation and spaces between data fields are allowed.
JAPANESE = re.compile(r"[\u3040-\u309f\u30a0-\u30fa\u30fc-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
GETTEXT_LITERAL = re.compile(r"""\b_\(\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")
COMMENT = re.compile(r"\{#.*?#\}", re.S)


def done_templates() -> list[str]:
    return [
        line.split(":", 1)[1].strip()
        for line in PO.read_text(encoding="utf-8").splitlines()
        if line.startswith("# done:")
    ]


def test_every_template_message_has_an_english_translation() -> None:
    english = i18n.catalogue("en")
    missing = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in i18n.template_files()
        for line, text in i18n.template_messages(path)
        if not english.get(text)
    ]
    assert not missing, "untranslated (add them to common/locale/en.po):\n" + "\n".join(missing)


def test_translations_keep_their_placeholders() -> None:
    """``_()`` formats with ``%`` (newstyle gettext), and the scripts replace ``{n}``-style holes:
    an English entry must format with the Japanese one's variables and keep every hole."""
    wrong = []
    for msgid, english in i18n.catalogue("en").items():
        names = set(re.findall(r"%\((\w+)\)s", msgid))
        try:
            english % dict.fromkeys(names, "x")
        except (KeyError, ValueError, TypeError) as exc:
            wrong.append(f"{msgid!r}: {exc!r}")
        if set(re.findall(r"%\((\w+)\)s", english)) != names or set(re.findall(r"\{\w+\}", english)) != set(
            re.findall(r"\{\w+\}", msgid)
        ):
            wrong.append(f"{msgid!r}: placeholders differ in {english!r}")
    assert not wrong, "\n".join(wrong)


def test_the_check_would_catch_a_new_untranslated_message(tmp_path: Path) -> None:
    page = tmp_path / "new.html"
    page.write_text('<p>{{ _("お知らせ") }}</p><p>{{ _("まだ訳していない新しい文") }}</p>', encoding="utf-8")
    texts = [text for _line, text in i18n.template_messages(page)]
    assert texts == ["お知らせ", "まだ訳していない新しい文"]
    assert [t for t in texts if t not in i18n.catalogue("en")] == ["まだ訳していない新しい文"]


def untranslated_japanese(source: str) -> list[str]:
    """Japanese text of a template outside ``_("…")`` literals and Jinja comments."""
    stripped = GETTEXT_LITERAL.sub("_(''", COMMENT.sub("", source))
    return [line.strip() for line in stripped.splitlines() if JAPANESE.search(line)]


def test_templates_marked_done_have_no_japanese_outside_gettext() -> None:
    done = done_templates()
    # the resident side and the staff chrome are done (docs/flows/3-1-3-2-people.md, "English")
    for must in (
        "portal/templates/portal_base.html",
        "portal/templates/login.html",
        "kiosk/templates/kiosk.html",
        "municipality/staff/templates/staff_base.html",
        "municipality/staff/templates/home.html",
    ):
        assert must in done
    left = {
        name: lines
        for name in done
        if (lines := untranslated_japanese((ROOT / name).read_text(encoding="utf-8")))
    }
    assert not left, left


def test_the_done_check_sees_a_literal_left_in_japanese() -> None:
    assert untranslated_japanese('<h1>{{ _("お知らせ") }}</h1>{# 注 #}') == []
    assert untranslated_japanese('<h1>{{ _("お知らせ") }}</h1>\n<p>未訳の文</p>') == ["<p>未訳の文</p>"]
    assert untranslated_japanese("{{ '既読' if read else '未読' }}") != []


def test_vocabulary_from_python_is_translated() -> None:
    from kojinbango.documents.certificates import ITEM_LABELS
    from kojinbango.municipality.addressee.matcher import LEVEL_LABELS, REASON_LABELS
    from kojinbango.municipality.addressee.views import ACTION_LABELS, EXTRA_REASONS, STATUS_LABELS
    from kojinbango.municipality.cards.service import IDENTITY_DOCUMENTS
    from kojinbango.municipality.forms.service import KINDS, REQUESTERS
    from kojinbango.municipality.register import event_forms
    from kojinbango.municipality.register.service import SEXES
    from kojinbango.municipality.register.views import STATUSES
    from kojinbango.municipality.staff.service import PURPOSES, ROLES

    english = i18n.catalogue("en")
    fields = [f for group in event_forms.FIELDS.values() for f in group]
    words = [
        *ROLES.values(),
        *PURPOSES,
        *SEXES.values(),
        *STATUSES.values(),
        *event_forms.TITLES.values(),
        *(f.label for f in fields),
        *(f.hint for f in fields if f.hint),
        *(label for f in fields for _value, label in f.options or ()),
        *IDENTITY_DOCUMENTS,
        *KINDS.values(),
        *REQUESTERS.values(),
        *ITEM_LABELS.values(),
        *STATUS_LABELS.values(),
        *ACTION_LABELS.values(),
        *EXTRA_REASONS.values(),
        *LEVEL_LABELS.values(),
        *REASON_LABELS.values(),
    ]
    assert [w for w in words if not english.get(w)] == []
    # role lists as the terminal shows them ("税務・福祉") are translated part by part
    assert i18n.label("税務・福祉", "en") == "Tax (税務) / Welfare (福祉)"
    assert i18n.label("税務・福祉", "ja") == "税務・福祉"
    assert i18n.label("山田　太郎", "en") == "山田　太郎"  # data is never translated


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/staff/home", "/staff/home"),
        ("/staff/?q=%E3%82%84", "/staff/?q=%E3%82%84"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        ("", "/"),
    ],
)
def test_the_toggle_returns_only_to_a_local_path(target: str, expected: str) -> None:
    assert i18n.safe_next(target) == expected


def test_toggle_sets_the_cookie_and_pages_follow_it(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(
        '<html lang="{{ lang }}">{% include "lang_toggle.html" %}<h1>{{ _("お知らせ") }}</h1>'
        "<p>{{ who|label }}</p></html>",
        encoding="utf-8",
    )
    app = FastAPI()
    templates = i18n.templates(app, tmp_path)
    i18n.templates(app, tmp_path)  # a second package on the same app: POST /lang stays one route
    assert [getattr(r, "path", "") for r in app.routes].count("/lang") == 1

    @app.get("/page")
    def page(request: Request) -> object:
        return templates.TemplateResponse(request, "page.html", {"who": "税務"})

    client = TestClient(app)
    ja = client.get("/page?x=1").text
    assert '<html lang="ja">' in ja and "<h1>お知らせ</h1>" in ja and "<p>税務</p>" in ja
    assert 'name="next" value="/page?x=1"' in ja and 'value="en"' in ja
    moved = client.post("/lang", data={"lang": "en", "next": "/page?x=1"}, follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == "/page?x=1"
    assert "lang=en" in moved.headers["set-cookie"]
    en = client.get("/page?x=1").text
    assert '<html lang="en">' in en and "<h1>Notices</h1>" in en and "<p>Tax (税務)</p>" in en
    assert ">日本語</button>" in en
    client.cookies.clear()  # (else the jar keeps the server's cookie beside this one)
    client.cookies.set("lang", "fr")  # anything else is Japanese
    assert '<html lang="ja">' in client.get("/page").text
    away = client.post("/lang", data={"lang": "en", "next": "//evil.example/"}, follow_redirects=False)
    assert away.headers["location"] == "/"

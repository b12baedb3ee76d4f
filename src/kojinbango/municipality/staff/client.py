"""A logged-in staff terminal for scripts, tests and the demo: login with password and TOTP, then
受付開始 with a purpose — the same forms a person fills in the browser."""

from __future__ import annotations

import re
import secrets
import string
import time
from typing import Any

import httpx
import pyotp

from kojinbango.common.transport import http_client
from kojinbango.municipality.staff.service import StaffService

DEMO_STAFF = (  # (login, display name, roles)
    ("juki", "住民記録 担当（デモ）", ["resident_records"]),
    ("zeimu", "税務 担当（デモ）", ["tax"]),
    ("fukushi", "福祉 担当（デモ）", ["welfare"]),
    ("kanri", "管理者（デモ）", ["admin"]),
)


def new_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(16))


def create_staff(service: StaffService, login: str, name: str, roles: list[str]) -> dict[str, Any]:
    """A staff account with a fresh random password; returns login, password and TOTP secret."""
    password = new_password()
    made = service.create_account(login, name, roles, password)
    return {"login": login, "password": password, "totp_secret": made["totp_secret"], "roles": roles}


def staff_client(
    base_url: str, account: dict[str, Any], purpose: str | None = None, timeout: float = 60.0
) -> httpx.Client:
    """An httpx client logged in as ``account``; with ``purpose``, an applicant context is open."""
    client = http_client(base_url=base_url.rstrip("/"), timeout=timeout)
    log_in(client, account, purpose)
    return client


def log_in(client: httpx.Client, account: dict[str, Any], purpose: str | None = None) -> None:
    """Log ``client`` (an httpx client or Starlette's TestClient) in with password and TOTP code."""
    totp = pyotp.TOTP(account["totp_secret"])
    form = {"login": account["login"], "password": account["password"]}
    r = client.post("/staff/login", data={**form, "code": totp.now()}, follow_redirects=False)
    if r.status_code == 401:
        # this 30-s step's code was used already (two logins within one step): wait for the next one
        time.sleep(30 - time.time() % 30 + 0.2)
        r = client.post("/staff/login", data={**form, "code": totp.now()}, follow_redirects=False)
    if r.status_code != 303:
        raise RuntimeError(f"staff login failed ({r.status_code}): {_error(r.text)}")
    if purpose:
        begin_applicant(client, account, purpose)


def begin_applicant(client: httpx.Client, account: dict[str, Any], purpose: str) -> None:
    r = client.post(
        "/staff/applicant",
        data={"password": account["password"], "purpose": purpose},
        follow_redirects=False,
    )
    if r.status_code != 303:
        raise RuntimeError(f"受付開始 failed ({r.status_code}): {_error(r.text)}")


def _error(html: str) -> str:
    m = re.search(r'id="error">([^<]*)<', html)
    return m.group(1) if m else html[:200]

"""A browser's session for the console's tests (requests, with its cookie), through the sign-in
pages: sign in, set up one-time codes, open pages, post forms with the session's CSRF token."""

from __future__ import annotations

import re

import pyotp
import requests

from tests.conftest import Server


class Browser:
    """A signed-in browser session (requests, with its cookie), through the sign-in pages."""

    def __init__(self, server: Server, username: str, password: str, otp: str = "") -> None:
        self.server, self.http = server, requests.Session()
        signed = self.http.post(server.url("/gate/login"), timeout=10,
                                json={"username": username, "password": password, "otp": otp})
        assert signed.status_code == 200, signed.text
        self.csrf = signed.json()["csrf_token"]
        self.secret = ""
        if signed.json()["mfa_pending"] and not otp:
            page = self.http.get(server.url("/gate/mfa"), timeout=10)
            self.secret = re.search(r'class="secret">([A-Z2-7]+)<', page.text).group(1)

    def enrol(self) -> None:
        done = self.http.post(self.server.url("/gate/mfa"), timeout=10,
                              json={"csrf_token": self.csrf, "code": pyotp.TOTP(self.secret).now()})
        assert done.status_code == 200, done.text

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.server.url(path), timeout=30, allow_redirects=False, **kwargs)

    def post(self, path: str, form: dict[str, str] | None = None) -> requests.Response:
        return self.http.post(self.server.url(path), data={"csrf_token": self.csrf, **(form or {})}, timeout=30,
                              allow_redirects=False)

    def follow(self, answer: requests.Response) -> requests.Response:
        assert answer.status_code == 303, (answer.status_code, answer.text[:500])
        return self.get(answer.headers["Location"])

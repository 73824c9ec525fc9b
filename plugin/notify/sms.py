"""Sends one SMS through the configured HTTP gateway (Gate.Sms): Clickatell, BulkSMS or a generic one.

The request each gateway wants is a pure function (`sms_request`), so its shape is tested without
the network; `SmsSender` only sends it.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

from plugin.config import SmsSettings
from plugin.notify.errors import SendFailed

__all__ = ["SendFailed", "SmsRequest", "SmsSender", "sms_request"]

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_PLACEHOLDER = re.compile(r"\{(to|text|from)\}")
_JSON = "application/json"
MAX_ANSWER = 65536


@dataclass(frozen=True)
class SmsRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def sms_request(settings: SmsSettings, to_e164: str, text: str) -> SmsRequest:
    """The HTTP request that asks the gateway to send `text` to `to_e164` (e.g. "+27821234567")."""
    if not E164.fullmatch(to_e164):
        raise SendFailed("the mobile number is not in E.164 form (+ and country code)")
    if settings.gateway == "clickatell":
        # Platform API: numbers without the "+", the API key itself as the Authorization header.
        body = {"content": text, "to": [to_e164[1:]]}
        if settings.sender:
            body["from"] = settings.sender
        headers = {"Authorization": settings.api_key or "", "Content-Type": _JSON, "Accept": _JSON}
        return SmsRequest("POST", settings.url, headers, json.dumps(body).encode())
    if settings.gateway == "bulksms":
        body = {"to": to_e164, "body": text}
        if settings.sender:
            body["from"] = settings.sender
        basic = base64.b64encode(f"{settings.username}:{settings.password}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}", "Content-Type": _JSON, "Accept": _JSON}
        return SmsRequest("POST", settings.url, headers, json.dumps(body).encode())
    return _generic_request(settings, to_e164, text)


def _generic_request(settings: SmsSettings, to_e164: str, text: str) -> SmsRequest:
    """Body: the configured template, its {to}, {text} and {from} replaced by the values escaped as
    inside a JSON string (so a JSON template stays valid JSON, whatever the text holds), in one
    pass (a value holding "{text}" is not replaced again)."""
    values = {"to": to_e164, "text": text, "from": settings.sender or ""}
    body = _PLACEHOLDER.sub(lambda match: json.dumps(values[match.group(1)])[1:-1], settings.body or "")
    headers = {name: value.replace("{api_key}", settings.api_key or "") for name, value in settings.headers}
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = _JSON
    return SmsRequest(settings.method, settings.url, headers, body.encode())


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A gateway that redirects is misconfigured: following would resend the credentials elsewhere
    (and turn the POST into a GET)."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class SmsSender:
    def __init__(self, settings: SmsSettings, timeout: float) -> None:
        self.settings = settings
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects())

    def send(self, to: str, text: str) -> None:
        """Hand the SMS to the gateway; any 2xx answer is success."""
        request = sms_request(self.settings, to, text)
        # The URL is the configured gateway's, checked to be http(s) at start-up.
        http_request = urllib.request.Request(request.url, data=request.body, headers=request.headers,  # noqa: S310
                                              method=request.method)
        try:
            with self._opener.open(http_request, timeout=self._timeout) as answer:
                status = answer.status
                answer.read(MAX_ANSWER)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise SendFailed(f"the SMS gateway answered HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise SendFailed(f"the SMS gateway is unreachable ({type(exc.reason).__name__})") from None
        except (OSError, http.client.HTTPException) as exc:
            raise SendFailed(f"SMS gateway failure ({type(exc).__name__})") from None
        if not 200 <= status < 300:
            raise SendFailed(f"the SMS gateway answered HTTP {status}")

"""The console's HTTP boundary against a real fleet: no session or a wrong CSRF token changes nothing,
a stranger reads nothing, uploads fail with clear reasons, and the token never leaks."""

from __future__ import annotations

import http.client as httpclient
import io
import re
from urllib.parse import urlsplit

import pytest
import redis
import requests
from PIL import Image

from tests.console.conftest import ConsoleFleet, sign_in

STATE_CHANGING = [
    ("PUT", "/api/assets/products/intruder.jpg"),
    ("DELETE", "/api/assets/products/victim.jpg"),
    ("POST", "/api/purges"),
    ("POST", "/logout"),
]
IDS = ["upload", "delete", "purge", "sign-out"]

READS = ["/api/assets", "/assets/list", "/api/purges", "/purges/recent", "/api/fleet", "/fleet/panel",
         "/thumb/products/victim.jpg", "/api/purges/1-0/events"]  # fmt: skip


def jpeg(colour: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 200), colour).save(out, "JPEG")
    return out.getvalue()


def purge_count(fleet: ConsoleFleet) -> int:
    state = fleet.state
    client = redis.Redis.from_url(state.redis_url)
    try:
        return int(client.xlen(f"edgefleet:{state.cluster}:purges"))
    finally:
        client.close()


def body_for(method: str, path: str) -> dict[str, object]:
    if path == "/api/purges":
        return {"json": {"kind": "all"}}
    if method == "PUT":
        return {"data": jpeg(), "headers": {"Content-Type": "image/jpeg"}}
    return {}


@pytest.fixture
def victim(signed_in: tuple[requests.Session, str], console_fleet: ConsoleFleet) -> str:
    http, csrf = signed_in
    answer = http.put(f"{console_fleet.url}/api/assets/products/victim.jpg?replace=1", data=jpeg(),
                      headers={"Content-Type": "image/jpeg", "X-CSRF-Token": csrf}, timeout=30)  # fmt: skip
    assert answer.status_code in (200, 201), answer.text
    return "products/victim.jpg"


def assert_nothing_changed(fleet: ConsoleFleet, http: requests.Session, csrf: str, purges_before: int) -> None:
    listing = http.get(f"{fleet.url}/api/assets", params={"prefix": "products/"}, timeout=30).json()
    keys = {o["key"] for o in listing["objects"]}
    assert "products/victim.jpg" in keys, "the asset was deleted"
    assert "products/intruder.jpg" not in keys, "the upload was stored"
    assert purge_count(fleet) == purges_before, "a purge was published"


@pytest.mark.parametrize(("method", "path"), STATE_CHANGING, ids=IDS)
def test_state_changing_route_refuses_a_request_without_a_session(
    console_fleet: ConsoleFleet, victim: str, signed_in: tuple[requests.Session, str], method: str, path: str
) -> None:
    before = purge_count(console_fleet)
    answer = requests.request(method, console_fleet.url + path, timeout=30, allow_redirects=False,
                              **body_for(method, path))  # type: ignore[arg-type]  # fmt: skip
    assert answer.status_code == 401, answer.text
    assert_nothing_changed(console_fleet, *signed_in, before)


@pytest.mark.parametrize("csrf", ["", "wrong-token"], ids=["no-csrf", "wrong-csrf"])
@pytest.mark.parametrize(("method", "path"), STATE_CHANGING, ids=IDS)
def test_state_changing_route_refuses_a_missing_or_wrong_csrf_token(
    console_fleet: ConsoleFleet, victim: str, signed_in: tuple[requests.Session, str], method: str, path: str,
    csrf: str,
) -> None:  # fmt: skip
    http, good = signed_in
    before = purge_count(console_fleet)
    extra = body_for(method, path)
    headers = {**extra.pop("headers", {}), **({"X-CSRF-Token": csrf} if csrf else {})}  # type: ignore[dict-item]
    answer = http.request(method, console_fleet.url + path, headers=headers, timeout=30, allow_redirects=False,
                          **extra)  # type: ignore[arg-type]  # fmt: skip
    assert answer.status_code == 403, answer.text
    assert "CSRF" in answer.json()["error"]
    assert_nothing_changed(console_fleet, http, good, before)
    assert http.get(f"{console_fleet.url}/assets", timeout=30, allow_redirects=False).status_code == 200, (
        "the session still works (sign-out was refused too)"
    )


def test_request_from_another_site_is_refused_even_with_the_right_csrf_token(
    console_fleet: ConsoleFleet, signed_in: tuple[requests.Session, str]
) -> None:
    http, csrf = signed_in
    before = purge_count(console_fleet)
    answer = http.post(f"{console_fleet.url}/api/purges", json={"kind": "all"}, timeout=30,
                       headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})  # fmt: skip
    assert answer.status_code == 403
    assert purge_count(console_fleet) == before


@pytest.mark.parametrize("path", READS)
def test_stranger_cannot_read_assets_purges_or_the_fleet(console_fleet: ConsoleFleet, victim: str, path: str) -> None:
    answer = requests.get(console_fleet.url + path, timeout=30, allow_redirects=False)
    assert answer.status_code == 401
    assert "victim" not in answer.text and "console-shop-edge" not in answer.text


@pytest.mark.parametrize("path", ["/assets", "/purges", "/fleet", "/assets/object/products/victim.jpg", "/"])
def test_stranger_opening_a_page_is_sent_to_sign_in(console_fleet: ConsoleFleet, path: str) -> None:
    answer = requests.get(console_fleet.url + path, timeout=30, allow_redirects=False)
    assert answer.status_code == 303 and answer.headers["Location"] == "/login"


def test_wrong_token_does_not_sign_in(console_fleet: ConsoleFleet) -> None:
    http = requests.Session()
    nonce = re.search(r'name="csrf" value="([^"]+)"', http.get(f"{console_fleet.url}/login", timeout=10).text)
    assert nonce
    answer = http.post(f"{console_fleet.url}/login", data={"csrf": nonce.group(1), "token": "guess" * 8}, timeout=10)
    assert answer.status_code == 401 and "not this fleet" in answer.text
    assert "edgefleet_console" not in http.cookies
    assert http.get(f"{console_fleet.url}/api/assets", timeout=10).status_code == 401


def test_sign_in_form_without_its_nonce_is_refused(console_fleet: ConsoleFleet) -> None:
    answer = requests.post(f"{console_fleet.url}/login", data={"token": console_fleet.tokens.console}, timeout=10,
                           allow_redirects=False)  # fmt: skip
    assert answer.status_code == 403
    assert "edgefleet_console=" not in answer.headers.get("Set-Cookie", "")


def test_session_cookie_is_httponly_and_samesite_strict(console_fleet: ConsoleFleet) -> None:
    http = requests.Session()
    nonce = re.search(r'name="csrf" value="([^"]+)"', http.get(f"{console_fleet.url}/login", timeout=10).text)
    assert nonce
    answer = http.post(f"{console_fleet.url}/login", timeout=10, allow_redirects=False,
                       data={"csrf": nonce.group(1), "token": console_fleet.tokens.console})  # fmt: skip
    assert answer.status_code == 303
    cookie = answer.headers["Set-Cookie"]
    assert "edgefleet_console=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert console_fleet.tokens.console not in cookie


def test_sign_out_ends_the_session(console_fleet: ConsoleFleet) -> None:
    http, csrf = sign_in(console_fleet.url, console_fleet.tokens.console)
    answer = http.post(f"{console_fleet.url}/logout", data={"csrf": csrf}, timeout=10)
    assert answer.url.endswith("/login")
    assert http.get(f"{console_fleet.url}/api/assets", timeout=10).status_code == 401


def test_upload_of_a_wrong_type_is_refused_with_a_clear_message(
    console_fleet: ConsoleFleet, signed_in: tuple[requests.Session, str]
) -> None:
    http, csrf = signed_in
    answer = http.put(f"{console_fleet.url}/api/assets/products/page.html", data=b"<script>alert(1)</script>",
                      headers={"Content-Type": "text/html", "X-CSRF-Token": csrf}, timeout=30)  # fmt: skip
    assert answer.status_code == 415
    assert answer.json()["error"].startswith("wrong type: text/html")


def test_upload_that_is_too_large_is_refused_before_its_body_is_read(
    console_fleet: ConsoleFleet, signed_in: tuple[requests.Session, str]
) -> None:
    http, csrf = signed_in
    cookie = http.cookies.get("edgefleet_console")
    target = urlsplit(console_fleet.url)
    connection = httpclient.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
    connection.putrequest("PUT", "/api/assets/products/huge.jpg")
    for name, value in (("Content-Type", "image/jpeg"), ("Content-Length", str(200 * 2**20)),
                        ("X-CSRF-Token", csrf), ("Cookie", f"edgefleet_console={cookie}")):  # fmt: skip
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    assert response.status == 413
    assert "too large: 200 MiB is over the 100 MiB limit" in text


@pytest.mark.parametrize("key", ["../etc/passwd", "products/.hidden", "with space.jpg"], ids=["dotdot", "dot", "space"])
def test_upload_to_a_key_that_is_not_allowed_says_why(
    console_fleet: ConsoleFleet, signed_in: tuple[requests.Session, str], key: str
) -> None:
    http, csrf = signed_in
    answer = http.put(f"{console_fleet.url}/api/assets/{key}", data=jpeg(),
                      headers={"Content-Type": "image/jpeg", "X-CSRF-Token": csrf}, timeout=30)  # fmt: skip
    assert answer.status_code in (400, 404), answer.text
    if answer.status_code == 400:
        assert "not allowed as a key" in answer.json()["error"]


def test_upload_over_an_existing_asset_needs_replace(
    console_fleet: ConsoleFleet, victim: str, signed_in: tuple[requests.Session, str]
) -> None:
    http, csrf = signed_in
    headers = {"Content-Type": "image/jpeg", "X-CSRF-Token": csrf}
    first = http.put(f"{console_fleet.url}/api/assets/{victim}", data=jpeg((1, 2, 3)), headers=headers, timeout=30)
    assert first.status_code == 409 and "Replace" in first.json()["error"]
    second = http.put(f"{console_fleet.url}/api/assets/{victim}?replace=1", data=jpeg((1, 2, 3)), headers=headers,
                      timeout=30)  # fmt: skip
    assert second.status_code == 200 and second.json()["replaced"] is True


def test_console_token_never_appears_in_bodies_urls_or_logs(
    console_fleet: ConsoleFleet, victim: str, signed_in: tuple[requests.Session, str]
) -> None:
    http, csrf = signed_in
    token = console_fleet.tokens.console
    seen = []
    for path in ["/assets", "/assets/list", f"/assets/object/{victim}", "/purges", "/purges/recent", "/fleet",
                 "/fleet/panel", "/api/assets", "/api/purges", "/api/fleet", "/static/console.js"]:  # fmt: skip
        answer = http.get(console_fleet.url + path, timeout=30)
        assert answer.status_code == 200, (path, answer.status_code)
        seen.append(answer.url)
        assert token not in answer.text, f"{path} shows the console token"
        assert token not in str(answer.headers), f"{path} sends the console token in a header"
    purge = http.post(f"{console_fleet.url}/api/purges", json={"kind": "path", "targets": [victim]},
                      headers={"X-CSRF-Token": csrf}, timeout=30)  # fmt: skip
    assert purge.status_code == 202 and token not in purge.text
    assert all(token not in url for url in seen)
    log = console_fleet.console_log()
    assert "Signed in a console session" in log, "the log is the console's"
    assert token not in log
    assert console_fleet.tokens.upload not in log and console_fleet.tokens.admin not in log
    assert token not in console_fleet.up_log(), "edgefleet up printed the console token"
    ps = (console_fleet.state_dir / "runtime.json").read_text()
    assert token not in ps

"""Users, logins and the rule that nothing but a few routes is public."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts import authenticate, create_user, set_password
from app.errors import InvalidInput, NotFound
from app.models import User
from app.web.auth import current_user, safe_next
from tests.factories import PASSWORD, add_user, csrf_from, log_in

# The email frame's images are public to the guard: their signed address is the credential
# (tests/web/test_dashboard.py checks that an unsigned or stale one gets nothing).
PUBLIC_PATHS = re.compile(
    r"/c/<[^>]+>|/o/<[^>]+>|/healthz|/login|/static/<path:filename>"
    r"|/campaigns/<[^>]+>/email/asset"
    # The API's contract and its reference page: documentation, no data.
    r"|/api/v1/openapi\.json|/api/v1/docs|/api/v1/docs/assets/<path:filename>"
    # The ESPs' webhooks: each checks its ESP's signature (tests/web/test_webhooks.py).
    r"|/webhooks/<esp>"
)


# -- users ------------------------------------------------------------------------------------


def test_create_user_stores_a_slow_salted_hash(session: Session) -> None:
    user = create_user(session, "ana", PASSWORD)
    other = create_user(session, "bo", PASSWORD)
    assert user.password_hash.startswith(("scrypt:", "pbkdf2:"))
    assert PASSWORD not in user.password_hash
    assert user.password_hash != other.password_hash  # salted


@pytest.mark.parametrize(
    "username",
    ["", " ana", "ana smith", "-ana", "a" * 151, "ana\n", "<script>", "ana/../x", "ana\x00"],
)
def test_create_user_refuses_bad_usernames(session: Session, username: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        create_user(session, username, PASSWORD)
    assert caught.value.code == "invalid_username"


@pytest.mark.parametrize("password", ["", "short", "123456789", "x" * 1025])
def test_create_user_refuses_bad_passwords(session: Session, password: str) -> None:
    with pytest.raises(InvalidInput):
        create_user(session, "ana", password)


def test_create_user_refuses_a_taken_name(session: Session) -> None:
    create_user(session, "ana", PASSWORD)
    with pytest.raises(InvalidInput) as caught:
        create_user(session, "ana", "another password")
    assert caught.value.code == "user_exists"


def test_authenticate(session: Session) -> None:
    user = create_user(session, "ana", PASSWORD)
    assert authenticate(session, "ana", PASSWORD) is user
    assert authenticate(session, "ana", PASSWORD.upper()) is None
    assert authenticate(session, "nobody", PASSWORD) is None
    assert authenticate(session, "ana", "x" * 5000) is None


def test_set_password(session: Session) -> None:
    create_user(session, "ana", PASSWORD)
    set_password(session, "ana", "a brand new password")
    assert authenticate(session, "ana", PASSWORD) is None
    assert authenticate(session, "ana", "a brand new password") is not None
    with pytest.raises(NotFound):
        set_password(session, "nobody", "a brand new password")


# -- the command line -------------------------------------------------------------------------


def test_cli_create_from_stdin(runner: FlaskCliRunner, session: Session) -> None:
    result = runner.invoke(
        args=["user", "create", "ana", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "user ana created" in result.output
    user = session.scalars(select(User).where(User.username == "ana")).one()
    assert authenticate(session, "ana", PASSWORD) is user


def test_cli_create_prompts_twice_and_hides_input(runner: FlaskCliRunner, session: Session) -> None:
    result = runner.invoke(args=["user", "create", "ana"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert authenticate(session, "ana", PASSWORD) is not None


def test_cli_create_refuses_mismatch_then_accepts(runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["user", "create", "ana"],
        input=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0
    assert "do not match" in result.output


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["user", "create", "ana", "--password-stdin"], "short\n", "at least"),
        (["user", "create", "bad name", "--password-stdin"], PASSWORD + "\n", "invalid_username"),
    ],
)
def test_cli_create_errors(
    runner: FlaskCliRunner, args: list[str], stdin: str, message: str
) -> None:
    result = runner.invoke(args=args, input=stdin)
    assert result.exit_code == 1
    assert message in result.output


def test_cli_duplicate_list_and_set_password(runner: FlaskCliRunner, session: Session) -> None:
    args = ["user", "create", "ana", "--password-stdin"]
    assert runner.invoke(args=args, input=PASSWORD + "\n").exit_code == 0
    again = runner.invoke(args=args, input=PASSWORD + "\n")
    assert again.exit_code == 1
    assert "already exists" in again.output
    listed = runner.invoke(args=["user", "list"])
    assert listed.output.startswith("ana\t")
    changed = runner.invoke(
        args=["user", "set-password", "ana", "--password-stdin"], input="a newer password\n"
    )
    assert changed.exit_code == 0
    assert authenticate(session, "ana", "a newer password") is not None


# -- logging in -------------------------------------------------------------------------------


def test_login_sets_a_protected_cookie_and_rotates_the_session(
    app: Flask, client: FlaskClient
) -> None:
    add_user(app)
    before = csrf_from(client.get("/login").get_data(as_text=True))
    response = log_in(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/campaigns"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http in tests; https below
    after = csrf_from(client.get("/").get_data(as_text=True))
    assert after != before


def test_cookie_is_secure_over_https(app: Flask) -> None:
    add_user(app)
    client = app.test_client()
    page = client.get("/login", base_url="https://localhost")
    assert "Secure" in page.headers["Set-Cookie"]


def test_current_user(app: Flask, client: FlaskClient) -> None:
    add_user(app)
    log_in(client)
    with client:
        client.get("/")
        user = current_user()
        assert user is not None
        assert user.username == "ana"


def test_wrong_password_stays_on_the_login_page(app: Flask, client: FlaskClient) -> None:
    add_user(app)
    response = log_in(client, password="not the password")
    assert response.status_code == 401
    assert "not correct" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_login_is_throttled_per_username(app: Flask, client: FlaskClient) -> None:
    add_user(app)
    for _ in range(5):
        assert log_in(client, password="wrong password!").status_code == 401
    blocked = log_in(client)  # even the right password waits now
    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.get_data(as_text=True)
    assert int(blocked.headers["Retry-After"]) > 0
    add_user(app, "bo")
    assert log_in(client, "bo").status_code == 302  # other names are unaffected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/campaigns/3?metric=unique", "/campaigns/3?metric=unique"),
        ("//evil.example", None),
        ("/\\evil.example", None),
        ("https://evil.example/", None),
        ("javascript:alert(1)", None),
        ("evil.example", None),
        ("/\t/evil.example", None),
        ("/\\/evil.example", None),
        ("/%5C/evil.example", "/%5C/evil.example"),  # an escaped backslash is a path
        ("/.//evil.example/", "/.//evil.example/"),  # a path on this site, as browsers read it
        ("/campaigns\\3", "/campaigns\\3"),
        ("", None),
        (None, None),
    ],
)
def test_safe_next(target: str | None, expected: str | None) -> None:
    assert safe_next(target) == expected


def test_login_follows_next_only_within_the_site(app: Flask, client: FlaskClient) -> None:
    add_user(app)
    first = client.get("/campaigns?q=spring")
    assert first.status_code == 302
    assert first.headers["Location"] == "/login?next=/campaigns?q%3Dspring"
    assert log_in(client, next="/campaigns?q=spring").headers["Location"] == "/campaigns?q=spring"
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/").get_data(as_text=True))})
    assert log_in(client, next="//evil.example/").headers["Location"] == "/campaigns"


def _copy_of_session(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of ``client``'s login cookie."""
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    other = app.test_client()
    other.set_cookie(cookie.key, cookie.value)
    return other


def _log_out(client: FlaskClient) -> None:
    token = csrf_from(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302


def test_a_copied_cookie_stops_working_at_logout(app: Flask, client: FlaskClient) -> None:
    add_user(app)
    log_in(client)
    stolen = _copy_of_session(app, client)
    assert stolen.get("/campaigns").status_code == 200  # the copy works while logged in
    _log_out(client)
    replayed = stolen.get("/campaigns")
    assert replayed.status_code == 302
    assert replayed.headers["Location"].startswith("/login?next=")
    # The API never took cookies, before or after.
    assert stolen.get("/api/v1/campaigns/1").status_code == 401
    # Logging in again opens a new session; the old cookie stays dead.
    log_in(client)
    assert client.get("/campaigns").status_code == 200
    assert stolen.get("/campaigns").status_code == 302


def test_logging_out_ends_the_users_other_sessions_too(app: Flask, client: FlaskClient) -> None:
    add_user(app)
    add_user(app, "bo")
    laptop, phone, colleague = client, app.test_client(), app.test_client()
    for browser, name in ((laptop, "ana"), (phone, "ana"), (colleague, "bo")):
        assert log_in(browser, name).status_code == 302
    _log_out(laptop)
    assert phone.get("/").status_code == 302
    assert colleague.get("/").status_code == 200  # another user's session is untouched


def test_a_cookie_from_before_session_versions_is_not_a_login(app: Flask) -> None:
    add_user(app)
    factory = app.extensions["clickmap.sessionmaker"]
    with factory() as s:
        user_id = s.scalars(select(User.id)).one()
    # What the login cookie held before migration 0006: the id and a password fingerprint.
    old = app.session_interface.get_signing_serializer(app).dumps(  # type: ignore[attr-defined]
        {"user_id": user_id, "user_fp": "0123456789abcdef", "_permanent": True}
    )
    browser = app.test_client()
    browser.set_cookie(app.config["SESSION_COOKIE_NAME"], old)
    assert browser.get("/").status_code == 302


def test_set_password_on_the_command_line_ends_every_session(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner
) -> None:
    add_user(app)
    log_in(client)
    elsewhere = app.test_client()
    log_in(elsewhere)
    copy = _copy_of_session(app, client)
    changed = runner.invoke(
        args=["user", "set-password", "ana", "--password-stdin"], input="a newer password\n"
    )
    assert changed.exit_code == 0, changed.output
    for browser in (client, elsewhere, copy):
        assert browser.get("/").status_code == 302
    assert log_in(client, password="a newer password").status_code == 302
    assert client.get("/").status_code == 200


def test_changing_the_password_ends_open_sessions(app: Flask, client: FlaskClient) -> None:
    add_user(app)
    log_in(client)
    assert client.get("/").status_code == 200
    factory = app.extensions["clickmap.sessionmaker"]
    with factory() as s:
        set_password(s, "ana", "a brand new password")
        s.commit()
    assert client.get("/").status_code == 302


# -- nothing is public but the public routes ----------------------------------------------------


def _example_url(rule: str) -> str:
    # Plausible ids: small integers fit both int and string converters.
    return re.sub(r"<[^>]+>", "1", rule)


def test_every_route_refuses_anonymous_requests(app: Flask) -> None:
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if PUBLIC_PATHS.fullmatch(rule.rule):
            continue
        url = _example_url(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            where = f"{method} {url} ({rule.endpoint})"
            if rule.rule.startswith("/api/"):
                assert response.status_code == 401, where
                assert response.json is not None
                assert response.json["error"]["code"] == "unauthorized", where
            else:
                assert response.status_code == 302, where
                assert response.headers["Location"].startswith("/login?next="), where
            checked += 1
    assert checked >= 8


def test_public_routes_stay_public(client: FlaskClient) -> None:
    assert client.get("/login").status_code == 200
    with client.get("/static/clickmap.css") as stylesheet:
        assert stylesheet.status_code == 200
    assert client.get("/c/not-a-token").status_code == 404  # answered, not sent to login
    assert client.get("/api/v1/openapi.json").json["openapi"] == "3.1.0"
    # Answered without a login, as JSON: here no ESP is configured.
    assert client.post("/webhooks/sendgrid").json["error"]["code"] == "webhook_not_configured"
    # Answered too, but with nothing: the address is not signed.
    assert client.get("/campaigns/1/email/asset?u=https://example.com/").status_code == 404


def test_a_logged_in_session_does_not_open_the_api(app: Flask, client: FlaskClient) -> None:
    """The API takes Bearer tokens only: a cookie is sent by any page, a token is not."""
    add_user(app)
    log_in(client)
    for rule in app.url_map.iter_rules():
        if PUBLIC_PATHS.fullmatch(rule.rule):
            continue
        if rule.rule.startswith("/api/") and "GET" in (rule.methods or set()):
            response = client.get(_example_url(rule.rule))
            assert response.status_code == 401, rule.rule

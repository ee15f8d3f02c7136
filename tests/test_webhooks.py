"""Outgoing webhooks: one signed POST per endpoint for every registry move, retried, dead-lettered, administered.

The endpoints are a local recording HTTP server on 127.0.0.1; the dispatcher is the real one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.commands import Invocation, run_command
from bot.commands.groups import SLACK
from bot.invoke import slack_actor
from core import registry
from core.errors import Conflict, NotFound, PermissionDenied
from core.platform import webhooks
from core.platform.actors import SCHEDULER, Actor
from core.platform.settings import Settings, parse_webhook_urls
from core.platform.status import get_status
from core.platform.timeutil import iso, parse_iso, utcnow
from core.services import build_services
from core.vocabulary import AliasMove, Face, Role
from tests.conftest import ROOT, finetune_env, make_settings, run_finetune, wait_until

SECRET = "s3cret-" + "k" * 40
ANN = Actor("ann", Face.CLI, role=Role.OPERATOR)
ADMIN = Actor("root", Face.CLI, role=Role.ADMIN)
VIEWER = Actor("U9", Face.SLACK, role=Role.VIEWER)


# A receiver: answers each path with a scripted status, records every request -----------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses in turn; the last one repeats
    retry_after: str | None = None
    release: threading.Event = field(default_factory=threading.Event)  # lets /hang answer
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, path: str) -> str:
        return f"{self.url}{path}"

    def to(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def answer(self, request: Received) -> int:
        with self.lock:
            self.received.append(request)
            statuses = self.script.get(request.path, [200])
            return statuses.pop(0) if len(statuses) > 1 else statuses[0]


@pytest.fixture
def receiver():
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = receiver.answer(Received(self.path.partition("?")[0], dict(self.headers), body))
            if self.path.startswith("/hang"):
                receiver.release.wait(30)
            reply = b"nope: this endpoint refuses it" if status >= 300 else b"ok"
            self.send_response(status)
            if receiver.retry_after is not None:
                self.send_header("Retry-After", receiver.retry_after)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield receiver
    receiver.release.set()
    server.shutdown()
    server.server_close()


def hooked(tmp_path, store, urls: list[str], **overrides):
    """Services whose settings name `urls`, registered as serve registers them at start."""
    settings = make_settings(tmp_path, webhook_urls=",".join(urls), webhook_secret=SECRET, **overrides)
    webhooks.register_endpoints(store, webhooks.configured_urls(settings))
    return build_services(settings, store=store)


def dispatcher(services, **options) -> webhooks.Dispatcher:
    return webhooks.Dispatcher(
        services.store, secret=SECRET, urls=webhooks.configured_urls(services.settings), **options
    )


def register(store, name: str = "support", count: int = 1) -> list[str]:
    ids = []
    with store.write():
        for number in range(count):
            version = registry.register_version(
                store, name=name, provider="openai", provider_model_id=f"ft:{name}:{number + 1}", job_id=None,
                dataset_version_id=None, base_model="gpt-4o-mini", metrics={}, cost_usd=None, actor=SCHEDULER,
                reason="test", now=iso(),
            )  # fmt: skip
            ids.append(version.id)
    return ids


def rows(store) -> list[dict]:
    return store.query("SELECT * FROM webhook_deliveries ORDER BY id")


def later(minutes: int):
    """A `now` past any backoff so far: the next run treats every pending row as due."""
    return utcnow() + timedelta(days=1, minutes=minutes)


# Events, bodies and signatures ------------------------------------------------------------------------------


def test_every_alias_move_maps_to_a_webhook_event_type_and_the_readme_names_each():
    assert set(webhooks.EVENT_TYPES) == set(AliasMove), "map every AliasMove in webhooks.EVENT_TYPES"
    assert set(webhooks.EVENT_TYPES.values()) == set(webhooks.WebhookEvent)
    readme = (ROOT / "README.md").read_text()
    for event_type in webhooks.WebhookEvent:
        assert f"`{event_type}`" in readme, event_type


def test_a_move_reaches_every_url_once_signed_and_describing_the_move(tmp_path, store, receiver):
    services = hooked(tmp_path, store, [receiver.at("/one"), receiver.at("/two")])
    register(store, count=2)
    registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging")
    with dispatcher(services) as sender:
        assert sender.run() == 6  # two versions created and one deploy, to each of two URLs

    for path in ("/one", "/two"):
        got = receiver.to(path)
        assert [r.event["type"] for r in got] == ["model_version.created"] * 2 + ["alias.moved"]
        for request in got:
            headers = {k.lower(): v for k, v in request.headers.items()}
            assert webhooks.verify_signature(SECRET, headers["finetune-signature"], request.body)
            assert headers["finetune-event-id"] == request.event["id"]
            assert headers["finetune-event-type"] == request.event["type"]
            assert headers["content-type"] == "application/json"
            assert "finetune-ops" in headers["user-agent"]
            assert parse_iso(request.event["created_at"]).utcoffset() == timedelta(0)
    created, moved = receiver.to("/one")[0].event, receiver.to("/one")[2].event
    assert created["data"]["version"] == {
        "id": "support:v1", "provider": "openai", "provider_model_id": "ft:support:1", "base_model": "gpt-4o-mini",
        "job_id": None, "dataset_version_id": None,
    }  # fmt: skip
    assert moved["data"] == {
        "model": "support", "alias": "staging", "move": "deploy", "from_version": None, "to_version": "support:v2",
        "canary_version": None, "canary_share": 0, "actor": str(ANN), "approval_id": None,
    }  # fmt: skip
    assert {r.event["id"] for r in receiver.to("/two")} == {r.event["id"] for r in receiver.to("/one")}
    assert len({r.event["id"] for r in receiver.to("/one")}) == 3  # each event its own id: receivers dedupe on it
    assert {row["status"] for row in rows(store)} == {"delivered"}


def test_canary_promote_and_rollback_name_their_event_types(tmp_path, store, receiver):
    services = hooked(tmp_path, store, [receiver.at("/hook")])
    register(store, count=2)
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")
    registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging", canary_share=10)
    registry.promote_canary(services, actor=ANN, name="support", alias="staging")
    registry.rollback(services, actor=ANN, name="support", alias="staging")
    with dispatcher(services) as sender:
        sender.run()
    moves = [r.event for r in receiver.to("/hook")][2:]
    assert [(m["type"], m["data"]["move"]) for m in moves] == [
        ("alias.moved", "deploy"), ("canary.changed", "canary"), ("alias.moved", "promote"),
        ("model.rolled_back", "rollback"),
    ]  # fmt: skip
    assert (moves[1]["data"]["canary_version"], moves[1]["data"]["canary_share"]) == ("support:v2", 10)
    assert (moves[3]["data"]["from_version"], moves[3]["data"]["to_version"]) == ("support:v2", "support:v1")


def test_a_change_that_fails_or_rolls_back_sends_nothing(tmp_path, store, receiver):
    services = hooked(tmp_path, store, [receiver.at("/hook")])
    [version] = register(store)
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")
    before = len(rows(store))
    with pytest.raises(Conflict):
        registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.write():
        register(store)  # a second version and its move, then the transaction fails
        raise Boom
    assert len(rows(store)) == before == 2
    with dispatcher(services) as sender:
        sender.run()
    assert [r.event["data"]["to_version"] for r in receiver.to("/hook")] == [version, version]


def test_without_endpoints_nothing_is_queued(store):
    register(store)
    assert rows(store) == []


def test_verify_signature_refuses_a_tampered_body_a_wrong_secret_and_a_stale_or_future_time():
    body = b'{"id":"evt_1","type":"alias.moved"}'
    now = 1_800_000_000
    header = webhooks.signature(SECRET, body, timestamp=now)
    assert webhooks.verify_signature(SECRET, header, body, now=now + 10)
    assert webhooks.verify_signature(SECRET, header, body.decode(), now=now)
    assert not webhooks.verify_signature(SECRET, header, body.replace(b"moved", b"MOVED"), now=now)
    assert not webhooks.verify_signature("another-" + SECRET, header, body, now=now)
    assert not webhooks.verify_signature(SECRET, header, body, now=now + 301)
    assert not webhooks.verify_signature(SECRET, header, body, now=now - 301)
    assert webhooks.verify_signature(SECRET, header, body, now=now + 1000, tolerance_s=2000)
    rotated = f"{header},v1={'0' * 64}"  # one signature per secret while one is being replaced
    assert webhooks.verify_signature(SECRET, rotated, body, now=now)


@given(st.text(max_size=300))
def test_verify_signature_answers_false_to_any_header_and_never_raises(header):
    assert webhooks.verify_signature(SECRET, header, b"{}", now=0) is False


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body_as_the_readme_shows():
    import hashlib
    import hmac

    body = '{"id":"evt_2"}'
    header = webhooks.signature(SECRET, body.encode(), timestamp=1700000000)
    digest = hmac.new(SECRET.encode(), f"1700000000.{body}".encode(), hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={digest}"
    readme = (ROOT / "README.md").read_text()
    example = readme[readme.index("## Webhooks") :].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(example, namespace)  # the README's receiver code, run as written
    assert namespace["verify"](SECRET, header, body.encode(), now=1700000001)
    assert not namespace["verify"](SECRET, header, body.encode() + b" ", now=1700000001)
    assert not namespace["verify"](SECRET, header, body.encode(), now=1700000000 + 301)


# Delivery: retries, dead letters, isolation -------------------------------------------------------------------


def test_a_500_is_retried_and_the_event_delivered_once(tmp_path, store, receiver):
    receiver.script["/flaky"] = [500, 200]
    services = hooked(tmp_path, store, [receiver.at("/flaky")])
    register(store)
    with dispatcher(services) as sender:
        assert sender.run() == 0
        [row] = rows(store)
        assert (row["status"], row["attempts"], row["last_status_code"]) == ("pending", 1, 500)
        assert "answered 500: nope" in row["last_error"] and parse_iso(row["next_attempt_at"]) > utcnow()
        assert sender.run() == 0  # backing off: not due yet
        assert sender.run(now=later(1)) == 1
        assert sender.run(now=later(2)) == 0
    [row] = rows(store)
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 2, None)
    got = receiver.to("/flaky")
    assert len(got) == 2 and got[0].event["id"] == got[1].event["id"]
    attempts = store.query("SELECT status_code, error FROM webhook_attempts WHERE delivery_id = ? ORDER BY id", (1,))
    assert [a["status_code"] for a in attempts] == [500, 200] and attempts[1]["error"] is None


def test_a_400_becomes_a_dead_letter_after_the_configured_attempts(tmp_path, store, receiver):
    receiver.script["/refuses"] = [400]
    services = hooked(tmp_path, store, [receiver.at("/refuses")])
    register(store)
    with dispatcher(services) as sender:
        for attempt in range(1, webhooks.MAX_ATTEMPTS + 3):
            sender.run(now=later(attempt))
    assert len(receiver.to("/refuses")) == webhooks.MAX_ATTEMPTS
    [row] = rows(store)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("dead", webhooks.MAX_ATTEMPTS, 400)
    assert get_status(store).webhooks_dead == 1
    listing = webhooks.listing(store, actor=ADMIN)
    assert [d.id for d in listing.dead_letters] == [row["id"]] and listing.dead == 1
    assert listing.endpoints == [f"{receiver.url}/…"]


def test_a_redirect_is_refused_not_followed(tmp_path, store, receiver):
    receiver.script["/moved"] = [301]
    services = hooked(tmp_path, store, [receiver.at("/moved")])
    register(store)
    with dispatcher(services) as sender:
        sender.run()
    [row] = rows(store)
    assert row["last_status_code"] == 301 and "redirects are not followed" in row["last_error"]


def test_a_429_waits_as_long_as_retry_after_asks(tmp_path, store, receiver):
    receiver.script["/busy"] = [429]
    receiver.retry_after = "600"
    services = hooked(tmp_path, store, [receiver.at("/busy")])
    register(store, count=2)
    with dispatcher(services) as sender:
        started = utcnow()
        sender.run()
    assert len(receiver.to("/busy")) == 1  # throttled: the endpoint's other row waits for a later run
    first, second = rows(store)
    assert first["status"] == "pending" and parse_iso(first["next_attempt_at"]) >= started + timedelta(seconds=599)
    assert second["attempts"] == 0


def test_retry_after_reads_seconds_and_http_dates_and_caps_them():
    now = parse_iso("2026-11-23T10:00:00Z")
    assert webhooks.retry_after_seconds("30") == 30
    assert webhooks.retry_after_seconds("Mon, 23 Nov 2026 10:02:00 GMT", now=now) == 120
    assert webhooks.retry_after_seconds("99999999999") == webhooks.RETRY_AFTER_CAP_SECONDS
    assert webhooks.retry_after_seconds("soon") is None
    assert webhooks.retry_after_seconds(None) is None


def test_a_hanging_receiver_times_out_without_holding_up_the_other_url(tmp_path, store, receiver):
    services = hooked(tmp_path, store, [receiver.at("/hang"), receiver.at("/fine")])
    register(store)
    with dispatcher(services, timeout=0.5, wait_s=20) as sender:
        started = time.monotonic()
        assert sender.run() == 1
        assert time.monotonic() - started < 10
    hanging, fine = sorted(rows(store), key=lambda row: row["url"] != receiver.at("/hang"))
    assert fine["status"] == "delivered"
    assert hanging["status"] == "pending" and "no answer within 0.5 s" in hanging["last_error"]


def test_a_sender_stuck_on_one_url_never_delays_the_next_run_for_another(tmp_path, store, receiver):
    services = hooked(tmp_path, store, [receiver.at("/hang"), receiver.at("/fine")])
    register(store)
    with dispatcher(services, timeout=20, wait_s=0.2) as sender:
        sender.run()
        wait_until(lambda: receiver.to("/fine"), what="the first delivery")
        register(store)  # a second event while /hang still holds the first
        wait_until(lambda: sender.run() or len(receiver.to("/fine")) == 2, what="the second delivery")
        assert len(receiver.to("/hang")) == 1  # its sender is still waiting: the URL is not posted to twice
        receiver.release.set()
        wait_until(lambda: [r["status"] for r in rows(store)].count("delivered") == 3, what="the stuck one delivered")


def test_an_unreachable_endpoint_backs_off_alone(tmp_path, store, receiver):
    from tests.conftest import free_port

    services = hooked(tmp_path, store, [f"http://127.0.0.1:{free_port()}/gone", receiver.at("/fine")])
    register(store)
    with dispatcher(services) as sender:
        assert sender.run() == 1
    gone = next(row for row in rows(store) if row["status"] == "pending")
    assert gone["last_status_code"] is None and gone["last_error"].startswith("unreachable: ConnectError")


def test_a_row_that_cannot_be_sent_pays_alone(tmp_path, store, receiver, monkeypatch):
    services = hooked(tmp_path, store, [receiver.at("/fine")])
    register(store, count=2)
    real_post = webhooks.post

    def post(transport, row, **options):
        if row["id"] == 1:
            raise RuntimeError("a bug")
        return real_post(transport, row, **options)

    monkeypatch.setattr(webhooks, "post", post)
    with dispatcher(services) as sender:
        assert sender.run() == 1
    first, second = rows(store)
    assert (first["status"], first["attempts"], second["status"]) == ("pending", 1, "delivered")
    assert first["last_error"] == "RuntimeError while sending (the log has the details)"


def test_pending_deliveries_to_a_url_serve_no_longer_lists_become_dead_letters(tmp_path, store, receiver):
    services = hooked(tmp_path, store, [receiver.at("/old")])
    register(store)
    assert webhooks.register_endpoints(store, [receiver.at("/new")]) == 1
    [row] = rows(store)
    assert row["status"] == "dead" and "FINETUNE_WEBHOOK_URLS" in row["last_error"]
    with pytest.raises(Conflict, match="no longer delivers to"):
        webhooks.retry(store, actor=ADMIN, delivery_id=row["id"])
    assert webhooks.discard(store, actor=ADMIN, delivery_id=row["id"]).state == "discarded"
    register(store)
    assert [r["url"] for r in rows(store)][-1] == receiver.at("/new")
    assert services.settings.webhook_urls is not None


# Admin: list, retry, discard; in the terminal and in Slack ----------------------------------------------------


def test_an_admin_lists_and_retries_a_dead_letter_and_it_is_audited(tmp_path, store, receiver, cli, monkeypatch):
    receiver.script["/refuses"] = [400, 400, 400, 400, 400, 200]
    services = hooked(tmp_path, store, [receiver.at("/refuses")])
    register(store)
    with dispatcher(services) as sender:
        for attempt in range(webhooks.MAX_ATTEMPTS):
            sender.run(now=later(attempt))
        [row] = rows(store)
        assert row["status"] == "dead"

        monkeypatch.setenv("FINETUNE_WEBHOOK_URLS", receiver.at("/refuses"))
        monkeypatch.setenv("FINETUNE_WEBHOOK_SECRET", SECRET)
        code, out, _ = cli("webhooks", "--json")
        assert code == 0
        listed = json.loads(out)
        assert listed["dead"] == 1 and listed["dead_letters"][0]["id"] == row["id"]
        [latest] = listed["deliveries"]
        assert (latest["last_status"], latest["type"]) == (400, "model_version.created")
        code, out, _ = cli("webhooks", "retry", str(row["id"]), "--json")
        assert code == 0 and json.loads(out)["state"] == "pending"
        assert sender.run() == 1
    assert rows(store)[0]["status"] == "delivered"
    [audited] = store.query("SELECT actor, args, detail FROM audit_log WHERE command = 'webhooks_retry'")
    assert audited["detail"] == "was dead" and json.loads(audited["args"]) == {"delivery": row["id"]}
    code, _, err = cli("webhooks", "retry", str(row["id"]))
    assert code != 0 and "already delivered" in err
    code, _, err = cli("webhooks", "discard", "999")
    assert code != 0 and "no webhook delivery #999" in err
    code, _, err = cli("webhooks", "retry", "0")
    assert code == 2


def test_only_admins_administer_webhooks_in_any_face(tmp_path, store, settings):
    with pytest.raises(PermissionDenied, match="administer webhook deliveries"):
        webhooks.listing(store, actor=VIEWER)
    with pytest.raises(PermissionDenied):
        webhooks.retry(store, actor=ANN, delivery_id=1)
    with pytest.raises(NotFound):
        webhooks.retry(store, actor=ADMIN, delivery_id=1)
    services = build_services(make_settings(tmp_path, admins=["U1"]), store=store)
    for user, allowed in (("U1", True), ("U9", False)):
        inv = Invocation(services, slack_actor(services.settings, user))
        outcome = run_command(SLACK, ["webhooks"], inv, prog="/finetune")
        assert outcome.ok is allowed, outcome.result
        if allowed:
            assert isinstance(outcome.result, webhooks.WebhookList)


# Settings and secrecy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("urls", "says"),
    [
        ("ftp://files.example.com/x", "entry 1 (ftp://files.example.com/…) must start with http:// or https://"),
        ("https://ok.example.com, hooks.example.com", "entry 2 (not a URL) must start with http://"),
        ("https://:8080/x", "names no host"),
        ("https://h.example.com:99999/", "is not a URL"),
        ("https://h.example.com/a b", "contains spaces"),
        ("https://user:hunter2@h.example.com/x", "entry 1 (https://h.example.com/…) carries credentials"),
    ],
)
def test_a_bad_webhook_url_is_named_by_the_setting_and_its_entry(cli, monkeypatch, urls, says):
    monkeypatch.setenv("FINETUNE_WEBHOOK_URLS", urls)
    monkeypatch.setenv("FINETUNE_WEBHOOK_SECRET", SECRET)
    code, out, err = cli("config")
    assert code == 2
    said = " ".join(err.split())
    assert "FINETUNE_WEBHOOK_URLS: entry " in said and says in said
    assert "hunter2" not in out + err


def test_the_webhook_secret_is_required_long_and_says_how_to_make_one(cli, monkeypatch):
    monkeypatch.setenv("FINETUNE_WEBHOOK_URLS", "https://hooks.example.com/finetune")
    code, _, err = cli("config")
    said = " ".join(err.split())
    assert code == 2 and "FINETUNE_WEBHOOK_SECRET is not" in said
    assert 'python -c "import secrets; print(secrets.token_hex(32))"' in said
    monkeypatch.setenv("FINETUNE_WEBHOOK_SECRET", "tooshort-but-secret")
    code, out, err = cli("config")
    said = " ".join(err.split())
    assert code == 2 and "FINETUNE_WEBHOOK_SECRET: must be at least 32 characters (it has 19)" in said
    assert "tooshort-but-secret" not in out + err


@given(st.text(max_size=200))
def test_parsing_webhook_urls_accepts_only_http_urls_and_refuses_with_a_value_error(text):
    try:
        urls = parse_webhook_urls(text)
    except ValueError as exc:
        assert "entry " in str(exc)
        return
    for url in urls:
        assert url.split("://")[0].lower() in ("http", "https") and "@" not in url.split("/")[2]


def test_the_secret_never_reaches_the_logs_or_config(tmp_path, store, receiver, cli, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.script["/path-token-XYZ"] = [500, 400, 200]
    services = hooked(tmp_path, store, [receiver.at("/path-token-XYZ?key=query-token-XYZ")])
    started = webhooks.start(services)
    assert started is not None
    started.close()
    register(store)
    with dispatcher(services) as sender:
        for attempt in range(3):
            sender.run(now=later(attempt))
    assert "delivered" in caplog.text and "not delivered" in caplog.text
    monkeypatch.setenv("FINETUNE_WEBHOOK_URLS", receiver.at("/path-token-XYZ?key=query-token-XYZ"))
    monkeypatch.setenv("FINETUNE_WEBHOOK_SECRET", SECRET)
    code, out, _ = cli("config", "--json")
    assert code == 0
    shown = {e["env"]: e for e in json.loads(out)["entries"]}
    assert shown["FINETUNE_WEBHOOK_SECRET"]["value"] == "********" and shown["FINETUNE_WEBHOOK_SECRET"]["secret"]
    assert shown["FINETUNE_WEBHOOK_URLS"]["value"] == "********"
    _, listing, _ = cli("webhooks", "--json")
    for text in (caplog.text, out, listing):
        assert SECRET not in text and "token-XYZ" not in text


def test_settings_without_webhooks_stay_valid():
    settings = Settings(_env_file=None)
    assert settings.webhook_urls is None and webhooks.configured_urls(settings) == []


# Through a real `finetune serve` ------------------------------------------------------------------------------


def test_a_move_made_by_the_cli_reaches_the_receiver_through_serve(settings, store, receiver, start_serve):
    register(store, count=2)
    env = {
        "FINETUNE_WEBHOOK_URLS": receiver.at("/serve"),
        "FINETUNE_WEBHOOK_SECRET": SECRET,
        "FINETUNE_OUTBOX_SECONDS": "0.2",
    }
    serve = start_serve(settings, **env)  # Slack is off: webhooks go out all the same
    done = run_finetune(["deploy", "support", "v2", "--alias", "staging"], finetune_env(settings, **env))
    assert done.returncode == 0, done.stdout + done.stderr
    [request] = wait_until(lambda: receiver.to("/serve"), timeout=30, what="the webhook from serve")
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert webhooks.verify_signature(SECRET, headers["finetune-signature"], request.body)
    assert request.event["type"] == "alias.moved" and request.event["data"]["to_version"] == "support:v2"
    wait_until(lambda: rows(store)[0]["status"] == "delivered", what="the delivery recorded")
    assert "webhooks: delivering to http://127.0.0.1:" in serve.log() and SECRET not in serve.log()

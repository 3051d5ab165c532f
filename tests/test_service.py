"""The CDS Hooks service (`cli.py serve`), started as a real uvicorn process on 127.0.0.1 and
called over HTTP with httpx; tokens are signed with a key pair made for this module."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import load_example
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from typer.testing import CliRunner

from cli import app
from engine import default_triager

ROOT = Path(__file__).resolve().parents[1]
FHIR_DIR = ROOT / "tests" / "fhir"
EXAMPLES = ("neuropathic-persistent", "new-onset", "opioid-user", "red-flag-charcot", "rheumatoid")
ISSUER = "https://ehr.example.org"
SERVICE = "forefoot-pain"
MAX_BODY = 1024 * 1024
PREFETCH_TYPES = {"conditions": "Condition", "observations": "Observation", "medicationStatements": "MedicationStatement",
                  "medicationRequests": "MedicationRequest", "procedures": "Procedure"}


class Server:
    def __init__(self, base: str, key: ECKey, feedback_log: Path, proc: subprocess.Popen):
        self.base = base
        self.key = key
        self.feedback_log = feedback_log
        self.proc = proc
        self.client = httpx.Client(base_url=base, timeout=30.0)

    @property
    def endpoint(self) -> str:
        return f"{self.base}/cds-services/{SERVICE}"

    def token(self, key: ECKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": self.endpoint, "iat": now, "exp": now + 120, "jti": str(uuid.uuid4()),
                "tenant": "test"}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode({"alg": "ES384", "typ": "JWT", "kid": "ehr-test-key"}, body, key or self.key,
                          algorithms=["ES384"])

    def call(self, payload: Any, token: str | None = "fresh", path: str = "", **kw: Any) -> httpx.Response:
        headers = {}
        if token == "fresh":
            token = self.token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        return self.client.post(f"/cds-services/{SERVICE}{path}", content=payload,
                                headers={"Content-Type": "application/json", **headers}, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    """One real `cli.py serve` process for the whole module, trusting one test EHR key."""
    tmp = tmp_path_factory.mktemp("cds")
    key = ECKey.generate_key("P-384", parameters={"kid": "ehr-test-key", "use": "sig"})
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps(KeySet([key]).as_dict(private=False)), encoding="utf-8")
    log = tmp / "feedback.jsonl"
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "serve", "--port", str(port), "--jwks", str(jwks), "--issuer", ISSUER,
         "--feedback-log", str(log), "--max-body", str(MAX_BODY)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError("serve exited: " + proc.stderr.read().decode(errors="replace")[-2000:])
        try:
            if httpx.get(base + "/cds-services", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("serve did not answer within 60 s")
        time.sleep(0.1)
    srv = Server(base, key, log, proc)
    yield srv
    srv.client.close()
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def bundle(name: str) -> dict[str, Any]:
    return json.loads((FHIR_DIR / f"{name}.json").read_text(encoding="utf-8"))


def prefetch_of(name: str) -> dict[str, Any]:
    """The example Bundle as an EHR would prefetch it: the Patient, and one searchset per query."""
    src = bundle(name)
    out: dict[str, Any] = {"patient": src["entry"][0]["resource"]}
    for key, rtype in PREFETCH_TYPES.items():
        out[key] = {"resourceType": "Bundle", "type": "searchset", "meta": {"lastUpdated": src["timestamp"]},
                    "entry": [{"fullUrl": e["fullUrl"], "resource": e["resource"], "search": {"mode": "match"}}
                              for e in src["entry"] if e["resource"]["resourceType"] == rtype]}
    return out


def hook_request(name: str = "new-onset", **changes: Any) -> dict[str, Any]:
    pre = prefetch_of(name)
    req = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()), "fhirServer": "https://ehr.example.org/fhir",
           "context": {"userId": "Practitioner/123", "patientId": pre["patient"]["id"]}, "prefetch": pre}
    req.update(changes)
    return req


def entry(card: dict[str, Any]) -> dict[str, Any]:
    return card["extension"]["forefoot-cds.entry"]


def is_outcome(resp: httpx.Response) -> bool:
    body = resp.json()
    return body.get("resourceType") == "OperationOutcome" and all(i.get("diagnostics") for i in body["issue"])


# ------------------------------------------------------------------ discovery and hook calls


def test_discovery_lists_the_patient_view_service(server: Server) -> None:
    """GET /cds-services lists one patient-view service with prefetch templates for every resource it reads."""
    services = server.client.get("/cds-services").json()["services"]
    assert [(s["hook"], s["id"]) for s in services] == [("patient-view", SERVICE)]
    templates = services[0]["prefetch"]
    assert templates["patient"] == "Patient/{{context.patientId}}"
    for rtype in ("Condition", "Observation", "MedicationStatement", "MedicationRequest", "Procedure"):
        assert any(t.startswith(f"{rtype}?patient={{{{context.patientId}}}}") for t in templates.values()), rtype
    assert "72514-3" in templates["observations"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_hook_call_gives_the_examples_recommendations_as_cards(server: Server, name: str) -> None:
    """patient-view with the example's prefetch answers cards (red flags, contraindications, the plan) for exactly the JSON triage's recommendations."""
    resp = server.call(hook_request(name))
    assert resp.status_code == 200, resp.text
    expected = default_triager().triage(load_example(name))
    got = resp.json()["cards"]
    recommended = [code for c in got for code in
                   (entry(c)["interventions"] if entry(c)["type"] == "plan" else
                    [entry(c)["intervention"]] if entry(c)["type"] == "red_flag" else [])]
    assert sorted(dict.fromkeys(recommended)) == sorted(r.intervention for r in expected.recommendations)
    assert [entry(c)["intervention"] for c in got if entry(c)["type"] == "contraindication"] == \
        [n.intervention for n in expected.not_recommended if n.kind == "contraindicated"]


def test_cards_follow_the_cds_hooks_rules(server: Server) -> None:
    """Each card has a uuid, a summary under 140 characters, a known indicator and a source with label and url."""
    for card in server.call(hook_request("opioid-user")).json()["cards"]:
        uuid.UUID(card["uuid"])
        assert len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"] and card["source"]["url"].startswith("http")


def test_patient_out_of_scope_gets_no_cards(server: Server) -> None:
    """A patient without metatarsalgia gets an empty card list, not an error."""
    req = hook_request()
    req["prefetch"]["conditions"]["entry"] = []
    resp = server.call(req)
    assert resp.status_code == 200 and resp.json() == {"cards": []}


def test_unknown_service_is_404(server: Server) -> None:
    """A hook call to a service id that does not exist is 404."""
    resp = server.client.post("/cds-services/no-such-service", json=hook_request(),
                              headers={"Authorization": f"Bearer {server.token()}"})
    assert resp.status_code == 404


# ------------------------------------------------------------------ security


def _token(server: Server, kind: str) -> str | None:
    other = ECKey.generate_key("P-384", parameters={"kid": "ehr-test-key"})
    return {
        "none": None,
        "expired": server.token(iat=int(time.time()) - 600, exp=int(time.time()) - 300),
        "wrong issuer": server.token(iss="https://intruder.example.org"),
        "wrong audience": server.token(aud="https://some-other-service.example.org/cds-services/forefoot-pain"),
        "bad signature": server.token(key=other),
        "no jti": server.token(jti=None),
        "garbage": "not.a.jwt",
    }[kind]


@pytest.mark.parametrize("kind", ["none", "expired", "wrong issuer", "wrong audience", "bad signature", "no jti", "garbage"])
def test_request_without_a_valid_token_is_401(server: Server, kind: str) -> None:
    """No token, or an expired, foreign, mis-addressed, badly signed or malformed one: 401, no cards."""
    resp = server.call(hook_request(), token=_token(server, kind))
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert "cards" not in resp.json()


def test_replayed_token_is_401(server: Server) -> None:
    """A token is accepted once: the same jti again is a replay (401)."""
    token = server.token()
    assert server.call(hook_request(), token=token).status_code == 200
    assert server.call(hook_request(), token=token).status_code == 401


def test_valid_token_with_audience_list_is_accepted(server: Server) -> None:
    """aud may be an array that includes this service's endpoint."""
    token = server.token(aud=["https://elsewhere.example.org", server.endpoint])
    assert server.call(hook_request(), token=token).status_code == 200


# ------------------------------------------------------------------ bad payloads


def test_missing_prefetch_is_412(server: Server) -> None:
    """Without prefetch the service answers 412 with an OperationOutcome naming every missing key."""
    req = hook_request()
    del req["prefetch"]
    resp = server.call(req)
    assert resp.status_code == 412 and is_outcome(resp)
    assert len(resp.json()["issue"]) == 6


def test_one_missing_prefetch_key_is_412(server: Server) -> None:
    """A prefetch without medications (or with null: the EHR could not fetch them) is 412, naming the key."""
    req = hook_request()
    req["prefetch"]["medicationStatements"] = None
    resp = server.call(req)
    assert resp.status_code == 412
    assert [i["diagnostics"] for i in resp.json()["issue"]] == ["prefetch.medicationStatements: required prefetch is missing"]


def _bad_payloads() -> dict[str, Any]:
    wrong_hook = hook_request(hook="order-sign")
    no_patient = hook_request(context={"userId": "Practitioner/1"})
    other_patient = hook_request(context={"patientId": "someone-else"})
    not_object = hook_request()
    not_object["prefetch"]["conditions"] = "Condition?patient=1"
    invalid_fhir = hook_request()
    invalid_fhir["prefetch"]["observations"]["entry"].append(
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueInteger": "six"}})
    bad_type = hook_request()
    bad_type["prefetch"]["procedures"]["entry"].append({"resource": {"resourceType": "NoSuchThing"}})
    no_instance = hook_request()
    del no_instance["hookInstance"]
    return {
        "not json": b"{not json",
        "not utf-8": b"\xff\xfe{}",
        "an array": [],
        "a string": "hello",
        "wrong hook": wrong_hook,
        "no hookInstance": no_instance,
        "no patientId": no_patient,
        "patient mismatch": other_patient,
        "prefetch item not an object": not_object,
        "invalid FHIR": invalid_fhir,
        "unknown resource type": bad_type,
        "duplicate keys": b'{"hook": "patient-view", "hook": "x"}',
        "prefetch not an object": hook_request(prefetch=[1, 2]),
    }


@pytest.mark.parametrize("kind", list(_bad_payloads()))
def test_malformed_payload_is_400_never_500(server: Server, kind: str) -> None:
    """Each malformed request gets 400 and an OperationOutcome that says what was wrong."""
    resp = server.call(_bad_payloads()[kind])
    assert resp.status_code == 400, resp.text
    assert is_outcome(resp)


def test_undated_prefetch_is_dated_by_the_signed_token(server: Server) -> None:
    """Searchsets without timestamp or meta.lastUpdated are dated by the token's iat (signed by the EHR), not the clock."""
    req = hook_request()
    for key in PREFETCH_TYPES:
        req["prefetch"][key].pop("meta")
    issued = int(time.mktime((2025, 1, 15, 12, 0, 0, 0, 0, 0)))
    resp = server.call(req, token=server.token(iat=issued))
    assert resp.status_code == 200
    assert resp.json() == server.call(hook_request()).json()


def test_oversized_body_is_413(server: Server) -> None:
    """A body larger than --max-body is refused with 413 before it is parsed."""
    resp = server.call(b"{" + b" " * (MAX_BODY + 10) + b"}")
    assert resp.status_code == 413 and is_outcome(resp)


# ------------------------------------------------------------------ feedback


def test_feedback_is_appended_to_the_log(server: Server) -> None:
    """Feedback on a card is appended to the log, one line per entry, without the free-text comment."""
    card = server.call(hook_request()).json()["cards"][0]["uuid"]
    before = server.feedback_log.read_text().splitlines() if server.feedback_log.exists() else []
    fb = {"feedback": [{"card": card, "outcome": "overridden", "outcomeTimestamp": "2025-01-15T10:00:00Z",
                        "overrideReason": {"reason": {"system": "https://forefoot-cds.example/fhir/CodeSystem/cds-override-reason",
                                                      "code": "patient-declined"},
                                           "userComment": "Mrs Example prefers to wait"}}]}
    resp = server.call(fb, path="/feedback")
    assert resp.status_code == 200
    lines = server.feedback_log.read_text().splitlines()
    assert lines[: len(before)] == before and len(lines) == len(before) + 1
    record = json.loads(lines[-1])
    assert record["card"] == card and record["overrideReason"]["code"] == "patient-declined"
    assert "Mrs Example" not in lines[-1] and record["userCommentGiven"] is True


@pytest.mark.parametrize("payload", [{}, {"feedback": []}, {"feedback": [{"card": "x", "outcome": "ignored",
                                                                         "outcomeTimestamp": "2025-01-15T10:00:00Z"}]},
                                     {"feedback": [{"outcome": "accepted"}]}, b"[1"])
def test_malformed_feedback_is_400(server: Server, payload: Any) -> None:
    """Feedback without entries, with an unknown outcome or without a card is 400."""
    resp = server.call(payload, path="/feedback")
    assert resp.status_code == 400 and is_outcome(resp)


def test_feedback_needs_a_token(server: Server) -> None:
    """Feedback without a bearer token is 401 and is not logged."""
    size = server.feedback_log.stat().st_size if server.feedback_log.exists() else 0
    fb = {"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted", "outcomeTimestamp": "2025-01-15T10:00:00Z"}]}
    assert server.call(fb, token=None, path="/feedback").status_code == 401
    assert (server.feedback_log.stat().st_size if server.feedback_log.exists() else 0) == size


# ------------------------------------------------------------------ configuration


def test_serve_refuses_to_start_without_keys_or_issuers() -> None:
    """`serve` without --jwks and --issuer (and without --insecure) exits 2 and says what is missing."""
    res = CliRunner().invoke(app, ["serve", "--port", "1"])
    assert res.exit_code == 2
    assert "--issuer" in res.stderr and "--jwks" in res.stderr


def test_insecure_mode_is_loudly_logged(capfd: pytest.CaptureFixture[str]) -> None:
    """--insecure says on stderr that tokens are not verified."""
    from engine.channels.service import ServiceConfig, create_app

    create_app(ServiceConfig(insecure=True))
    assert "INSECURE" in capfd.readouterr().err

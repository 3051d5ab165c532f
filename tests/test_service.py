"""The CDS Hooks service (`cli.py serve`), started as a real uvicorn process on 127.0.0.1 and
called over HTTP with httpx; tokens are signed with key pairs made for this module (joserfc).

Changed by the service issue (trust per issuer, shared SQLite memory, real requests):
- the server is started with `--trust ISSUER=JWKS` and `--db` (was --jwks, --issuer, --feedback-log);
- the examples' cards are compared with the FHIR triage at the token's iat day, the reference date
  of the service (was: the JSON twin of each example, at the Bundle's own timestamp);
- "undated prefetch is dated by the token" became "the reference date is the token's iat day, not
  the Bundle's timestamp" (tokens can no longer be issued a year before they are used);
- feedback is read back from the database (was a JSON-lines file).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey
from typer.testing import CliRunner

from bench.service import launch
from cli import app
from engine import default_triager
from engine.channels.fhir import bundle_from_prefetch, triage_bundle
from engine.views.cds_hooks import OVERRIDE_SYSTEM, cards

ROOT = Path(__file__).resolve().parents[1]
FHIR_DIR = ROOT / "tests" / "fhir"
EXAMPLES = ("neuropathic-persistent", "new-onset", "opioid-user", "red-flag-charcot", "rheumatoid")
ISSUER = "https://ehr.example.org"
ISSUER_B = "https://other-ehr.example.net"
SERVICE = "forefoot-pain"
MAX_BODY = 1024 * 1024
PREFETCH_TYPES = {
    "conditions": "Condition",
    "observations": "Observation",
    "medicationStatements": "MedicationStatement",
    "medicationRequests": "MedicationRequest",
    "procedures": "Procedure",
}


# ------------------------------------------------------------------ a real server, and how to call it


def write_jwks(path: Path, *keys: Any) -> Path:
    path.write_text(json.dumps(KeySet(list(keys)).as_dict(private=False)), encoding="utf-8")
    return path


class Server:
    """One `cli.py serve` process; `keys` maps each trusted issuer to the private key the test signs with."""

    def __init__(self, base: str, keys: dict[str, Any], db: Path, proc: subprocess.Popen, stderr: Path):
        self.base = base
        self.keys = keys
        self.db = db
        self.proc = proc
        self.stderr_path = stderr
        self.client = httpx.Client(base_url=base, timeout=60.0)

    @property
    def endpoint(self) -> str:
        return f"{self.base}/cds-services/{SERVICE}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def token(self, key: Any = None, alg: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": self.endpoint,
            "iat": now,
            "exp": now + 120,
            "jti": str(uuid.uuid4()),
            "tenant": "test",
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        key = (
            key
            if key is not None
            else self.keys[body.get("iss", ISSUER)]
            if body.get("iss") in self.keys
            else self.keys[ISSUER]
        )
        alg = alg or ("ES384" if isinstance(key, ECKey) else "RS384" if isinstance(key, RSAKey) else "HS256")
        header = {"alg": alg, "typ": "JWT"}
        if key.kid:
            header["kid"] = key.kid
        return jwt.encode(header, body, key, algorithms=[alg])

    def call(
        self, payload: Any, token: str | None = "fresh", path: str = "", scheme: str = "Bearer", **kw: Any
    ) -> httpx.Response:
        headers = {}
        if token == "fresh":
            token = self.token()
        if token is not None:
            headers["Authorization"] = f"{scheme} {token}"
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        return self.client.post(
            f"/cds-services/{SERVICE}{path}",
            content=payload,
            headers={"Content-Type": "application/json", **headers},
            **kw,
        )

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(
    tmp: Path,
    *args: str,
    keys: dict[str, Any] | None = None,
    db: Path | None = None,
    workers: int = 1,
    insecure: bool = False,
) -> Server:
    """Start `cli.py serve` on a free port, trusting each issuer of `keys` with a JWKS of its own key."""
    keys = keys or {}
    trust: list[str] = []
    for i, (issuer, key) in enumerate(keys.items()):
        trust += ["--trust", f"{issuer}={write_jwks(tmp / f'jwks-{i}.json', key)}"]
    db = db or tmp / "service.sqlite3"
    argv = ["--db", str(db), "--max-body", str(MAX_BODY), "--workers", str(workers), *trust, *args]
    if insecure:
        argv.append("--insecure")
    err = tmp / f"serve-{uuid.uuid4().hex[:12]}.stderr"
    proc, port = launch(argv, err, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    return Server(base, keys, db, proc, err)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    """One real `cli.py serve` process for the module, trusting two EHRs, each with its own key."""
    tmp = tmp_path_factory.mktemp("cds")
    keys = {
        ISSUER: ECKey.generate_key("P-384", parameters={"kid": "ehr-a-key", "use": "sig"}),
        ISSUER_B: RSAKey.generate_key(2048, parameters={"kid": "ehr-b-key", "use": "sig"}),
    }
    srv = start_server(tmp, keys=keys)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def insecure_server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    """`serve --insecure`: no token checks, for local demos."""
    srv = start_server(tmp_path_factory.mktemp("cds-insecure"), insecure=True)
    yield srv
    srv.stop()


def bundle(name: str) -> dict[str, Any]:
    return json.loads((FHIR_DIR / f"{name}.json").read_text(encoding="utf-8"))


def prefetch_of(name: str) -> dict[str, Any]:
    """The example Bundle as an EHR would prefetch it: the Patient, and one searchset per query."""
    src = bundle(name)
    out: dict[str, Any] = {"patient": src["entry"][0]["resource"]}
    for key, rtype in PREFETCH_TYPES.items():
        out[key] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "meta": {"lastUpdated": src["timestamp"]},
            "entry": [
                {"fullUrl": e["fullUrl"], "resource": e["resource"], "search": {"mode": "match"}}
                for e in src["entry"]
                if e["resource"]["resourceType"] == rtype
            ],
        }
    return out


def hook_request(name: str = "new-onset", **changes: Any) -> dict[str, Any]:
    pre = prefetch_of(name)
    req = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "https://ehr.example.org/fhir",
        "context": {"userId": "Practitioner/123", "patientId": pre["patient"]["id"]},
        "prefetch": pre,
    }
    req.update(changes)
    return req


def expected_cards(req: dict[str, Any], as_of: date, srv: Server) -> dict[str, Any]:
    """The cards the engine gives for this request's prefetch at `as_of`, without the service."""
    triager = default_triager()
    b, names = bundle_from_prefetch(req["prefetch"])
    return cards(triage_bundle(triager, b, as_of=as_of, names=names), triager.ruleset, srv.base + "/cds-services")


def today() -> date:
    return datetime.now(UTC).date()


def entry(card: dict[str, Any]) -> dict[str, Any]:
    return card["extension"]["forefoot-cds.entry"]


def is_outcome(resp: httpx.Response) -> bool:
    body = resp.json()
    return body.get("resourceType") == "OperationOutcome" and all(i.get("diagnostics") for i in body["issue"])


def diagnostics(resp: httpx.Response) -> str:
    return " | ".join(i["diagnostics"] for i in resp.json()["issue"])


def no_birth_date_no_pain() -> dict[str, Any]:
    """A chart with no forefoot pain (no metatarsalgia Condition) and no birth date."""
    req = hook_request()
    req["prefetch"]["conditions"]["entry"] = []
    del req["prefetch"]["patient"]["birthDate"]
    return req


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
def test_hook_call_gives_the_engines_cards_at_the_tokens_day(server: Server, name: str) -> None:
    """patient-view with the example's prefetch answers exactly the engine's cards for that prefetch at the token's iat day."""
    req = hook_request(name)
    resp = server.call(req)
    assert resp.status_code == 200, resp.text
    assert resp.json() == expected_cards(req, today(), server)
    assert resp.json()["cards"]


def test_cards_follow_the_cds_hooks_rules(server: Server) -> None:
    """Each card has a uuid, a summary under 140 characters, a known indicator and a source with label and url."""
    got = server.call(hook_request("opioid-user")).json()["cards"]
    assert got
    for card in got:
        uuid.UUID(card["uuid"])
        assert len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"] and card["source"]["url"].startswith("http")


def test_every_cards_source_is_the_services_readable_pathway_page(server: Server) -> None:
    """source.url is the service's own /pathway: an HTML page of the rule set (no patient data), not the
    JSON discovery endpoint."""
    got = server.call(hook_request("opioid-user")).json()["cards"]
    assert {c["source"]["url"] for c in got} == {server.base + "/pathway"}
    page = server.client.get("/pathway")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text and "LDN-OFFER" in page.text
    assert server.client.post("/pathway").status_code == 405


def test_patient_out_of_scope_gets_no_cards(server: Server) -> None:
    """A patient without metatarsalgia gets an empty card list, not an error."""
    req = hook_request()
    req["prefetch"]["conditions"]["entry"] = []
    resp = server.call(req)
    assert resp.status_code == 200 and resp.json() == {"cards": []}


def test_unknown_service_is_404(server: Server) -> None:
    """A hook call to a service id that does not exist is 404, as an OperationOutcome."""
    resp = server.client.post(
        "/cds-services/no-such-service", json=hook_request(), headers={"Authorization": f"Bearer {server.token()}"}
    )
    assert resp.status_code == 404 and is_outcome(resp)


# ------------------------------------------------------------------ real requests


def test_patient_id_written_as_a_reference_is_accepted(server: Server) -> None:
    """context.patientId 'Patient/<id>' (as the HL7/CDC opioid IG's examples write it) is the same patient as '<id>'."""
    plain = server.call(hook_request("opioid-user"))
    req = hook_request("opioid-user")
    req["context"]["patientId"] = "Patient/" + req["context"]["patientId"]
    resp = server.call(req)
    assert resp.status_code == 200, resp.text
    assert resp.json() == plain.json() and resp.json()["cards"]


@pytest.mark.parametrize("pid", ["Practitioner/example-opioid-user", "Patient/", "Patient/a b", "x" * 65])
def test_patient_id_that_is_not_a_patient_is_400(server: Server, pid: str) -> None:
    """A patientId that is neither a FHIR id nor Patient/<id> is 400 naming context.patientId."""
    resp = server.call(hook_request("opioid-user", context={"patientId": pid}))
    assert resp.status_code == 400 and is_outcome(resp)
    assert "context.patientId" in diagnostics(resp)


def test_no_forefoot_pain_and_no_birth_date_is_200_without_cards(server: Server) -> None:
    """A chart without forefoot pain and without a birth date gets 200 and no cards: scope comes first."""
    resp = server.call(no_birth_date_no_pain())
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"cards": []}


def test_no_forefoot_pain_with_a_missing_prefetch_key_is_200_without_cards(server: Server) -> None:
    """Without forefoot pain, a missing medications prefetch does not matter: 200, no cards."""
    req = hook_request()
    req["prefetch"]["conditions"]["entry"] = []
    del req["prefetch"]["medicationStatements"]
    resp = server.call(req)
    assert resp.status_code == 200 and resp.json() == {"cards": []}


def test_forefoot_pain_without_birth_date_is_400_naming_it(server: Server) -> None:
    """With forefoot pain, a Patient without birthDate is 400 naming prefetch.patient's birthDate."""
    req = hook_request()
    del req["prefetch"]["patient"]["birthDate"]
    resp = server.call(req)
    assert resp.status_code == 400 and is_outcome(resp)
    assert "prefetch.patient" in diagnostics(resp) and "birthDate" in diagnostics(resp)


def test_forefoot_pain_beginning_at_an_age_the_patient_has_not_reached_is_400_naming_it(server: Server) -> None:
    """Rule set 1.2.1: an onset age beyond the patient's age is an entry error (400 naming the
    Condition's onsetAge), not pain that began today."""
    req = hook_request()
    for e in req["prefetch"]["conditions"]["entry"]:
        e["resource"].pop("onsetDateTime", None)
        e["resource"]["onsetAge"] = {"value": 200, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"}
    resp = server.call(req)
    assert resp.status_code == 400 and is_outcome(resp)
    assert "prefetch.conditions" in diagnostics(resp) and "onsetAge" in diagnostics(resp)


def test_reference_date_is_the_tokens_iat_day_not_the_bundles_timestamp(server: Server) -> None:
    """Durations are computed at the token's iat day: a new onset in the Bundle's month is long-standing today."""
    req = hook_request("new-onset")
    stamp = date.fromisoformat(bundle("new-onset")["timestamp"][:10])
    resp = server.call(req)
    assert resp.status_code == 200
    at_iat, at_stamp = expected_cards(req, today(), server), expected_cards(req, stamp, server)
    assert at_iat != at_stamp  # the test can tell them apart ("pain 3 weeks" at the Bundle's timestamp)
    assert resp.json() == at_iat


def test_undated_prefetch_is_accepted(server: Server) -> None:
    """Searchsets without timestamp or meta.lastUpdated are triaged at the token's iat day, like dated ones."""
    req = hook_request()
    for key in PREFETCH_TYPES:
        req["prefetch"][key].pop("meta")
    resp = server.call(req)
    assert resp.status_code == 200
    assert resp.json() == server.call(hook_request()).json()


def test_get_on_a_hook_is_405_as_an_operation_outcome(server: Server) -> None:
    """GET on the hook endpoint is 405 with an OperationOutcome (and Allow: POST), not a framework's JSON."""
    resp = server.client.get(f"/cds-services/{SERVICE}")
    assert resp.status_code == 405 and is_outcome(resp)
    assert resp.headers["allow"] == "POST"
    assert "detail" not in resp.json()


@pytest.mark.parametrize(
    "method,path,status",
    [
        ("GET", "/", 404),
        ("GET", "/cds-services/x/y/z", 404),
        ("POST", "/cds-services", 405),
        ("DELETE", f"/cds-services/{SERVICE}", 405),
        ("GET", f"/cds-services/{SERVICE}/feedback", 405),
    ],
)
def test_every_error_is_an_operation_outcome(server: Server, method: str, path: str, status: int) -> None:
    """Unknown paths and wrong methods answer an OperationOutcome with the right status."""
    resp = server.client.request(method, path)
    assert resp.status_code == status and is_outcome(resp)
    assert resp.headers["content-type"].startswith("application/fhir+json")


# ------------------------------------------------------------------ failed prefetch


def test_prefetch_that_is_an_operation_outcome_is_412_naming_the_key(server: Server) -> None:
    """A prefetch key holding an OperationOutcome (the EHR's search failed) is 412, never read as 'none'."""
    req = hook_request("opioid-user")
    req["prefetch"]["medicationStatements"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout", "diagnostics": "upstream timed out for Jane Example"}],
    }
    resp = server.call(req)
    assert resp.status_code == 412 and is_outcome(resp)
    assert diagnostics(resp).startswith("prefetch.medicationStatements:")
    assert "Jane Example" not in resp.text


def test_searchset_holding_only_an_operation_outcome_is_412(server: Server) -> None:
    """A searchset whose only entry is an OperationOutcome (search.mode outcome) is a failed search: 412."""
    req = hook_request("opioid-user")
    req["prefetch"]["conditions"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]},
                "search": {"mode": "outcome"},
            }
        ],
    }
    resp = server.call(req)
    assert resp.status_code == 412 and is_outcome(resp)
    assert "prefetch.conditions" in diagnostics(resp)


def test_empty_searchset_is_none_not_a_failure(server: Server) -> None:
    """An empty searchset is a real 'none': no procedures recorded is 200."""
    req = hook_request("opioid-user")
    req["prefetch"]["procedures"]["entry"] = []
    assert server.call(req).status_code == 200


# ------------------------------------------------------------------ the HL7/CDC opioid IG's request shape


def _ig_item(resource: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if resource is None else {"response": {"status": "200 OK"}, "resource": resource}


def _ig_roller() -> list[dict[str, Any]]:
    return [
        {
            "url": "http://fhir.org/guides/cdc/opioid-cds/StructureDefinition/dataDateRoller",
            "extension": [
                {"url": "dateLastUpdated", "valueDateTime": "2022-10-10"},
                {
                    "url": "frequency",
                    "valueDuration": {
                        "value": 30.0,
                        "unit": "days",
                        "system": "http://unitsofmeasure.org",
                        "code": "d",
                    },
                },
            ],
        }
    ]


def _ig_medication_request(pid: str, rid: str, rxnorm: str, display: str, authored: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "extension": _ig_roller(),
        "status": "active",
        "intent": "order",
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "community"}
                ]
            }
        ],
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": rxnorm, "display": display}]
        },
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": authored,
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1.0, "periodUnit": "d"}},
                "asNeededBoolean": False,
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": 1.0,
                            "unit": "tablet",
                            "system": "http://unitsofmeasure.org",
                            "code": "{tablet}",
                        }
                    }
                ],
            }
        ],
        "dispenseRequest": {
            "numberOfRepeatsAllowed": 3,
            "expectedSupplyDuration": {"value": 30, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"},
        },
    }


def _ig_urine_screen(pid: str, rid: str, loinc: str, display: str, day: str, result: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "extension": _ig_roller(),
        "status": "final",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc, "display": display}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": day,
        "valueString": result,
        "interpretation": [{"coding": [{"system": "http://hl7.org/fhir/v2/0078", "code": result}]}],
    }


def opioid_ig_requests() -> dict[str, dict[str, Any]]:
    """Five patient-view requests built in the shape of the HL7/CDC opioid CDS IG's examples
    (cqframework/opioid-cds-r4, input/tests/OpioidCDSREC04PatientView, ...REC10PatientView,
    ...REC11PatientView, ...REC12PatientView): hookInstance, fhirServer, context with
    `Patient/<id>` and `Encounter/<id>`, and prefetch items `item1`..`item5`, each a
    `{"response": {"status": "200 OK"}, "resource": ...}` wrapper around the Patient, a
    MedicationRequest or an untyped Bundle, or null. Ids follow the IG's naming; the clinical
    values are this project's own (the IG's files are not copied)."""
    out = {}
    specs = [
        (
            "rec-04-long-acting-opioid",
            "male",
            "2002-10-10",
            [("1049502", "12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet")],
            [],
            False,
        ),
        (
            "rec-04-not-long-acting-opioid",
            "female",
            "1975-03-02",
            [("1049621", "Oxycodone Hydrochloride 5 MG Oral Tablet")],
            [],
            False,
        ),
        (
            "rec-10-patient-view-POS-Cocaine-drugs",
            "female",
            "1982-06-21",
            [
                ("1049502", "12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet"),
                ("197696", "72 HR Fentanyl 0.075 MG/HR Transdermal System"),
            ],
            [
                ("70146-6", "Benzoylecgonine [Mass/volume] in Urine by Screen method", "2022-07-06", "POS"),
                ("70146-6", "Benzoylecgonine [Mass/volume] in Urine by Screen method", "2022-08-13", "NEG"),
            ],
            True,
        ),
        (
            "rec-11-patient-view-benzo-trigger-without-opioid",
            "male",
            "1968-01-30",
            [("197591", "Diazepam 5 MG Oral Tablet")],
            [],
            True,
        ),
        (
            "rec-12-patient-view-in-criteria-met",
            "female",
            "1990-09-09",
            [("1010600", "Buprenorphine 2 MG / Naloxone 0.5 MG Sublingual Film")],
            [],
            True,
        ),
    ]
    for name, gender, born, meds, screens, bundled in specs:
        pid = f"example-{name}"
        patient = {"resourceType": "Patient", "id": pid, "extension": _ig_roller(), "gender": gender, "birthDate": born}
        requests = [
            _ig_medication_request(pid, f"{pid}-prefetch-{i}", code, display, "2022-07-10")
            for i, (code, display) in enumerate(meds)
        ]
        item2 = (
            {"resourceType": "Bundle", "entry": [{"resource": r} for r in requests]}
            if bundled or len(requests) > 1
            else requests[0]
        )
        observations = [_ig_urine_screen(pid, f"{pid}-prefetch-obs{i}", *s) for i, s in enumerate(screens)]
        item3 = {"resourceType": "Bundle", "entry": [{"resource": o} for o in observations]} if observations else None
        out[name] = {
            "hookInstance": str(uuid.uuid4()),
            "fhirServer": "http://localhost:8080/fhir",
            "hook": "patient-view",
            "context": {
                "userId": "Practitioner/example",
                "patientId": f"Patient/{pid}",
                "encounterId": f"Encounter/{pid}-context",
            },
            "prefetch": {
                "item1": _ig_item(patient),
                "item2": _ig_item(item2),
                "item3": _ig_item(item3),
                "item4": None,
                "item5": None,
            },
        }
    return out


def rekeyed(req: dict[str, Any]) -> dict[str, Any]:
    """An IG request's resources under this service's prefetch keys, as an EHR configured from our discovery would send them."""
    resources: list[dict[str, Any]] = []
    for item in req["prefetch"].values():
        if item is None:
            continue
        res = item["resource"]
        resources += [e["resource"] for e in res["entry"]] if res["resourceType"] == "Bundle" else [res]
    pre: dict[str, Any] = {"patient": next(r for r in resources if r["resourceType"] == "Patient")}
    for key, rtype in PREFETCH_TYPES.items():
        pre[key] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources if r["resourceType"] == rtype],
        }
    return {**req, "prefetch": pre}


@pytest.mark.parametrize("name", list(opioid_ig_requests()))
def test_opioid_ig_requests_are_never_400(server: Server, name: str) -> None:
    """The opioid IG's patient-view requests, with Patient/<id>: 412 (their prefetch keys are not ours), never 400."""
    resp = server.call(opioid_ig_requests()[name])
    assert resp.status_code in (200, 412), resp.text
    assert is_outcome(resp)
    assert "prefetch.conditions: required prefetch is missing" in diagnostics(resp)


@pytest.mark.parametrize("name", list(opioid_ig_requests()))
def test_opioid_ig_patients_under_our_prefetch_keys_get_no_cards(server: Server, name: str) -> None:
    """The same patients under this service's prefetch keys: 200 with no cards (none has forefoot pain)."""
    resp = server.call(rekeyed(opioid_ig_requests()[name]))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"cards": []}


# ------------------------------------------------------------------ trust


def _token(server: Server, kind: str) -> str | None:
    other = ECKey.generate_key("P-384", parameters={"kid": "ehr-a-key"})
    now = int(time.time())
    return {
        "none": None,
        "expired": server.token(iat=now - 600, exp=now - 300),
        "untrusted issuer": server.token(iss="https://intruder.example.org", key=server.keys[ISSUER]),
        "wrong audience": server.token(aud="https://some-other-service.example.org/cds-services/forefoot-pain"),
        "bad signature": server.token(key=other),
        "no jti": server.token(jti=None),
        "no iat": server.token(iat=None),
        "garbage": "not.a.jwt",
        "two parts": "abc.def",
        "lives too long": server.token(exp=now + 3600),
        "issued in the future": server.token(iat=now + 600, exp=now + 700),
        "not yet valid": server.token(nbf=now + 600),
        "issuer A's key signing for issuer B": server.token(iss=ISSUER_B, key=server.keys[ISSUER]),
        "issuer B's key signing for issuer A": server.token(iss=ISSUER, key=server.keys[ISSUER_B]),
        "symmetric HS256": server.token(key=OctKey.generate_key(256), alg="HS256"),
        "NaN expiry": server.token(exp=float("nan"), iat=float("nan")),
    }[kind]


TOKEN_KINDS = [
    "none",
    "expired",
    "untrusted issuer",
    "wrong audience",
    "bad signature",
    "no jti",
    "no iat",
    "garbage",
    "two parts",
    "lives too long",
    "issued in the future",
    "not yet valid",
    "issuer A's key signing for issuer B",
    "issuer B's key signing for issuer A",
    "symmetric HS256",
    "NaN expiry",
]


@pytest.mark.parametrize("kind", TOKEN_KINDS)
def test_request_without_a_valid_token_is_401(server: Server, kind: str) -> None:
    """No token, or an expired, foreign, mis-addressed, badly signed, long-lived or malformed one: 401, no cards."""
    resp = server.call(hook_request(), token=_token(server, kind))
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert is_outcome(resp) and "cards" not in resp.json()


def test_unsigned_alg_none_token_is_401(server: Server) -> None:
    """A token with alg 'none' and no signature is refused."""
    import base64

    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    now = int(time.time())
    token = (
        b64({"alg": "none", "typ": "JWT"})
        + "."
        + b64({"iss": ISSUER, "aud": server.endpoint, "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())})
        + "."
    )
    assert server.call(hook_request(), token=token).status_code == 401


def test_each_issuer_signs_with_its_own_key(server: Server) -> None:
    """Issuer B's token signed by B's own (RSA) key is accepted; the same claims signed by A's key are not."""
    assert server.call(hook_request(), token=server.token(iss=ISSUER_B)).status_code == 200
    assert server.call(hook_request(), token=server.token(iss=ISSUER_B, key=server.keys[ISSUER])).status_code == 401


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_bearer_scheme_is_case_insensitive(server: Server, scheme: str) -> None:
    """`Authorization: bearer <JWT>` is as good as `Bearer` (RFC 7235: the scheme is case-insensitive)."""
    assert server.call(hook_request(), scheme=scheme).status_code == 200


def test_other_authorization_schemes_are_401(server: Server) -> None:
    """`Authorization: Basic ...` is not a bearer token: 401."""
    assert server.call(hook_request(), scheme="Basic").status_code == 401


def test_replayed_token_is_401(server: Server) -> None:
    """A token is accepted once: the same jti again is a replay (401)."""
    token = server.token()
    assert server.call(hook_request(), token=token).status_code == 200
    resp = server.call(hook_request(), token=token)
    assert resp.status_code == 401 and "replay" in diagnostics(resp)


def test_valid_token_with_audience_list_is_accepted(server: Server) -> None:
    """aud may be an array that includes this service's endpoint."""
    token = server.token(aud=["https://elsewhere.example.org", server.endpoint])
    assert server.call(hook_request(), token=token).status_code == 200


def test_token_of_exactly_the_maximum_lifetime_is_accepted(server: Server) -> None:
    """exp - iat = 300 s (the default maximum) is accepted; 301 s is not."""
    now = int(time.time())
    assert server.call(hook_request(), token=server.token(iat=now, exp=now + 300)).status_code == 200
    assert server.call(hook_request(), token=server.token(iat=now, exp=now + 301)).status_code == 401


def test_replay_is_refused_by_another_process_sharing_the_database(tmp_path: Path) -> None:
    """Two service processes on one --db (as two workers, or a restart): a jti used on one is refused by the other."""
    key = ECKey.generate_key("P-384", parameters={"kid": "k1"})
    first = start_server(tmp_path, keys={ISSUER: key})
    second = start_server(tmp_path, keys={ISSUER: key}, db=first.db)
    try:
        now = int(time.time())
        claims = {"iss": ISSUER, "iat": now, "exp": now + 120, "jti": str(uuid.uuid4())}

        def signed(srv: Server) -> str:  # the same iss and jti; aud names the server it is sent to
            return jwt.encode({"alg": "ES384", "kid": "k1"}, {**claims, "aud": srv.endpoint}, key, algorithms=["ES384"])

        assert first.call(hook_request(), token=signed(first)).status_code == 200
        resp = second.call(hook_request(), token=signed(second))
        assert resp.status_code == 401 and "replay" in diagnostics(resp)
        first.stop()
        restarted = start_server(tmp_path, keys={ISSUER: key}, db=first.db)
        try:
            assert restarted.call(hook_request(), token=signed(restarted)).status_code == 401
        finally:
            restarted.stop()
    finally:
        first.stop()
        second.stop()


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
    assert [i["diagnostics"] for i in resp.json()["issue"]] == [
        "prefetch.medicationStatements: required prefetch is missing"
    ]


def _bad_payloads() -> dict[str, Any]:
    wrong_hook = hook_request(hook="order-sign")
    no_patient = hook_request(context={"userId": "Practitioner/1"})
    other_patient = hook_request(context={"patientId": "someone-else"})
    not_object = hook_request()
    not_object["prefetch"]["conditions"] = "Condition?patient=1"
    invalid_fhir = hook_request()
    invalid_fhir["prefetch"]["observations"]["entry"].append(
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueInteger": "six"}}
    )
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
        "duplicate keys deep": json.dumps(hook_request()).replace(
            '"gender":', '"birthDate": "1970-01-01", "gender":', 1
        ),
        "too deep": b'{"a":' * 40 + b"1" + b"}" * 40,
        "prefetch not an object": hook_request(prefetch=[1, 2]),
    }


@pytest.mark.parametrize("kind", list(_bad_payloads()))
def test_malformed_payload_is_400_never_500(server: Server, kind: str) -> None:
    """Each malformed request gets 400 and an OperationOutcome that says what was wrong."""
    resp = server.call(_bad_payloads()[kind])
    assert resp.status_code == 400, resp.text
    assert is_outcome(resp)


def test_oversized_body_is_413(server: Server) -> None:
    """A body larger than --max-body is refused with 413 before it is parsed."""
    resp = server.call(b"{" + b" " * (MAX_BODY + 10) + b"}")
    assert resp.status_code == 413 and is_outcome(resp)


# ------------------------------------------------------------------ feedback


def _rows(db: Path, sql: str, *args: Any) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql, args).fetchall()


def test_feedback_is_stored_per_rule_without_the_comment(server: Server) -> None:
    """An override is stored with its card's rule and reason code; the free-text comment and the card uuid are not."""
    card = server.call(hook_request("opioid-user")).json()["cards"][0]
    before = _rows(server.db, "SELECT count(*) FROM feedback")[0][0]
    fb = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": "2025-01-15T10:00:00Z",
                "overrideReason": {
                    "reason": {"system": OVERRIDE_SYSTEM, "code": "patient-declined", "display": "Patient declined"},
                    "userComment": "Mrs Example prefers to wait",
                },
            }
        ]
    }
    time.sleep(0.2)  # issued cards are recorded just after the hook response is sent
    resp = server.call(fb, path="/feedback")
    assert resp.status_code == 200 and resp.json() == {}
    rows = _rows(
        server.db,
        "SELECT rule, intervention, kind, outcome, reason_code, comment_given FROM feedback ORDER BY id DESC LIMIT 1",
    )
    assert _rows(server.db, "SELECT count(*) FROM feedback")[0][0] == before + 1
    assert rows == [
        (entry(card)["rule"], entry(card)["intervention"], entry(card)["type"], "overridden", "patient-declined", 1)
    ]
    raw = b"".join(p.read_bytes() for p in server.db.parent.glob(server.db.name + "*"))
    assert b"Mrs Example" not in raw and card["uuid"].encode() not in _rows(server.db, "SELECT * FROM feedback")[-1]


def test_free_text_in_a_reason_code_is_not_stored(server: Server) -> None:
    """A reason 'code' that is a sentence is stored as '(not a code)': no free text reaches the database."""
    fb = {
        "feedback": [
            {
                "card": str(uuid.uuid4()),
                "outcome": "overridden",
                "outcomeTimestamp": "2025-01-15T10:00:00Z",
                "overrideReason": {"reason": {"code": "Mr Smith said no thanks"}},
            }
        ]
    }
    assert server.call(fb, path="/feedback").status_code == 200
    assert _rows(server.db, "SELECT reason_code, rule FROM feedback ORDER BY id DESC LIMIT 1") == [
        ("(not a code)", None)
    ]


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"feedback": []},
        {"feedback": [{"card": str(uuid.uuid4()), "outcome": "ignored", "outcomeTimestamp": "2025-01-15T10:00:00Z"}]},
        {"feedback": [{"outcome": "accepted"}]},
        {"feedback": [{"card": "not-a-uuid", "outcome": "accepted", "outcomeTimestamp": "2025-01-15T10:00:00Z"}]},
        {"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted"}]},
        {"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted", "outcomeTimestamp": "yesterday"}]},
        {
            "feedback": [
                {
                    "card": str(uuid.uuid4()),
                    "outcome": "accepted",
                    "outcomeTimestamp": "2025-01-15T10:00:00Z",
                    "overrideReason": {"reason": {"code": "patient-declined"}},
                }
            ]
        },
        {
            "feedback": [
                {
                    "card": str(uuid.uuid4()),
                    "outcome": "overridden",
                    "outcomeTimestamp": "2025-01-15T10:00:00Z",
                    "acceptedSuggestions": [{"id": "x"}],
                }
            ]
        },
        {
            "feedback": [
                {
                    "card": str(uuid.uuid4()),
                    "outcome": "overridden",
                    "outcomeTimestamp": "2025-01-15T10:00:00Z",
                    "overrideReason": {"reason": {"system": "x"}},
                }
            ]
        },
        b"[1",
    ],
)
def test_malformed_feedback_is_400(server: Server, payload: Any) -> None:
    """Feedback without entries, with an unknown outcome, a bad card uuid or timestamp, or a reason on an acceptance: 400."""
    resp = server.call(payload, path="/feedback")
    assert resp.status_code == 400 and is_outcome(resp)
    assert diagnostics(resp).startswith(("feedback", "(document)"))


def test_feedback_needs_a_token(server: Server) -> None:
    """Feedback without a bearer token is 401 and is not stored."""
    before = _rows(server.db, "SELECT count(*) FROM feedback")[0][0]
    fb = {"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted", "outcomeTimestamp": "2025-01-15T10:00:00Z"}]}
    assert server.call(fb, token=None, path="/feedback").status_code == 401
    assert _rows(server.db, "SELECT count(*) FROM feedback")[0][0] == before


# ------------------------------------------------------------------ insecure mode


def test_insecure_mode_dates_by_the_clock_and_warns_once(insecure_server: Server) -> None:
    """--insecure: a prefetch without any timestamp is triaged at the server's day (200), and the warning is said once, at start."""
    req = hook_request("new-onset")
    for key in PREFETCH_TYPES:
        req["prefetch"][key].pop("meta")
    for _ in range(3):
        resp = insecure_server.call(req, token=None)
        assert resp.status_code == 200, resp.text
    assert resp.json() == expected_cards(req, today(), insecure_server)
    assert insecure_server.stderr().count("INSECURE") == 1


# ------------------------------------------------------------------ configuration


def _serve(*args: str) -> Any:
    return CliRunner().invoke(app, ["serve", "--port", "1", *args])


def test_serve_refuses_to_start_without_trust() -> None:
    """`serve` without --trust (and without --insecure) exits 2 and says what is missing."""
    res = _serve()
    assert res.exit_code == 2
    assert "--trust" in res.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--trust", "https://ehr.example.org=http://ehr.example.org/jwks.json"], "plain http"),
        (["--trust", "https://ehr.example.org=ftp://ehr.example.org/jwks.json"], "https://"),
        (["--trust", "https://ehr.example.org"], "ISSUER=JWKS"),
        (["--trust", "=jwks.json"], "issuer is empty"),
        (["--trust", "a=x.json", "--trust", "a=y.json"], "twice"),
        (["--jwks", "x.json", "--issuer", "https://ehr.example.org"], "replaced by --trust"),
        (["--insecure", "--feedback-log", "x.jsonl"], "replaced by --db"),
        (["--trust", "https://ehr.example.org=/nonexistent/ehr-jwks.json"], "unusable key set"),
    ],
)
def test_serve_refuses_bad_trust(args: list[str], needle: str) -> None:
    """A JWKS over plain http, a non-https URL, a --trust without '=', an empty or repeated issuer and the old options: exit 2, saying why."""
    res = _serve(*args)
    assert res.exit_code == 2, res.output
    assert needle in " ".join(res.stderr.split())


def test_serve_refuses_a_jwks_with_private_keys(tmp_path: Path) -> None:
    """A JWKS file that holds a private key is refused at start (exit 2)."""
    key = ECKey.generate_key("P-384")
    path = tmp_path / "private.json"
    path.write_text(json.dumps(KeySet([key]).as_dict(private=True)))
    res = _serve("--trust", f"{ISSUER}={path}", "--db", str(tmp_path / "db.sqlite3"))
    assert res.exit_code == 2
    assert "private" in res.stderr


def test_insecure_mode_is_loudly_logged(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--insecure says on stderr that tokens are not verified."""
    from engine.channels.service import ServiceConfig, create_app

    create_app(ServiceConfig(insecure=True, db=tmp_path / "db.sqlite3"))
    assert "INSECURE" in capfd.readouterr().err


def test_feedback_report_needs_an_existing_database(tmp_path: Path) -> None:
    """`feedback report` on a missing database, or with a bad --since, exits 2 naming the option."""
    res = CliRunner().invoke(app, ["feedback", "report", "--db", str(tmp_path / "none.sqlite3")])
    assert res.exit_code == 2 and "--db" in res.stderr
    from engine.channels.store import Store

    Store(tmp_path / "db.sqlite3").close()
    res = CliRunner().invoke(app, ["feedback", "report", "--db", str(tmp_path / "db.sqlite3"), "--since", "last week"])
    assert res.exit_code == 2 and "--since" in res.stderr
    res = CliRunner().invoke(app, ["feedback", "report", "--db", str(tmp_path / "db.sqlite3")])
    assert res.exit_code == 0 and "no feedback yet" in res.stdout


def test_no_patient_data_in_the_servers_log(server: Server) -> None:
    """Rejected tokens, malformed records and failed prefetches leave no patient id, name or value in the log."""
    req = hook_request("opioid-user")
    req["prefetch"]["patient"]["name"] = [{"family": "Examplewoman", "given": ["Jane"]}]
    req["prefetch"]["patient"]["birthDate"] = "not-a-date"
    server.call(req)
    server.call(req, token=server.token(iss="https://intruder.example.org"))
    req["prefetch"]["conditions"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "x", "diagnostics": "Examplewoman"}],
    }
    server.call(req)
    log = server.stderr()
    assert "401:" in log  # the log is being written
    for secret in ("Examplewoman", "Jane", "not-a-date", "example-opioid-user", "example-new-onset"):
        assert secret not in log


@pytest.mark.skipif(shutil.which("jose") is None, reason="the jose tool (Debian package 'jose') is not installed")
def test_integrators_guide_keys_made_with_the_jose_tool_are_accepted(tmp_path: Path) -> None:
    """The README's steps: `jose jwk gen` and `jose jwk pub -s` make a key pair and a JWKS this service trusts."""
    subprocess.run(
        ["jose", "jwk", "gen", "-i", '{"alg":"ES384","kid":"ehr-2026-12"}', "-o", str(tmp_path / "ehr-private.jwk")],
        check=True,
    )
    subprocess.run(
        ["jose", "jwk", "pub", "-s", "-i", str(tmp_path / "ehr-private.jwk"), "-o", str(tmp_path / "ehr-jwks.json")],
        check=True,
    )
    proc, port = launch(
        ["--db", str(tmp_path / "db.sqlite3"), "--trust", f"{ISSUER}={tmp_path / 'ehr-jwks.json'}"],
        tmp_path / "serve.stderr",
        timeout=60,
    )
    srv = Server(
        f"http://127.0.0.1:{port}",
        {ISSUER: ECKey.import_key(json.loads((tmp_path / "ehr-private.jwk").read_text()))},
        tmp_path / "db.sqlite3",
        proc,
        tmp_path / "serve.stderr",
    )
    try:
        assert srv.call(hook_request()).status_code == 200
    finally:
        srv.stop()

"""PII redaction: every type by example, look-alikes left alone, and precision and recall on a labelled sample."""

from __future__ import annotations

import importlib.machinery
import pickle
import random
import sys
import types
from collections import Counter

import pytest

from core.data import pii
from core.data.pii import PLACEHOLDERS, RedactionReport, RedactionResult, Redactor, redact
from core.errors import InvalidInput
from tests.pii_samples import KINDS, labelled_sample, support_text

REDACTOR = Redactor(use_presidio=False)
SAMPLE = labelled_sample(3000)

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
OPENAI_KEY = "sk-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6l"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgwMbRvI0MBZhpI\n"
    "YjN8gFhZ8OQVuNC9T1ZQbQBUTyMpv8z3XfF8H9bZzL4VvQ+0k9sJ7L2YHb3f2H==\n"
    "-----END RSA PRIVATE KEY-----"
)


def clean(text: str) -> str:
    return REDACTOR.redact(text).text


EXAMPLES = [
    # email
    ("Write to jane.doe@example.com today.", "Write to [EMAIL] today."),
    ("cc: J_Smith+support@mail.example.co.uk.", "cc: [EMAIL]."),
    ("<mailto:omar99@acme.io|omar99@acme.io>", "<mailto:[EMAIL]|[EMAIL]>"),
    # phone
    ("Call +44 20 7946 0958 please", "Call [PHONE] please"),
    ("Call +1 (415) 555-2671 please", "Call [PHONE] please"),
    ("Call (415) 555-2671 please", "Call [PHONE] please"),
    ("Call 415-555-2671 please", "Call [PHONE] please"),
    ("Call 415.555.2671 or 415 555-2671", "Call [PHONE] or [PHONE]"),
    ("Paris office: +33 1 23 45 67 89.", "Paris office: [PHONE]."),
    ("Berlin office: +49 30 901820.", "Berlin office: [PHONE]."),
    ("tel:+14155552671", "tel:[PHONE]"),
    ("London +44 (0)20 7946 0958, or 020 7946 0958, mobile 07700 900123", "London [PHONE], or [PHONE], mobile [PHONE]"),
    ("Tokyo +81 3-1234-5678, Mumbai +91 98765 43210", "Tokyo [PHONE], Mumbai [PHONE]"),
    ("Toll free 1-800-555-0199; US +1 415.555.2671", "Toll free [PHONE]; US [PHONE]"),
    ("Fixe : 01 23 45 67 89", "Fixe : [PHONE]"),
    ("Call +1 415 555 2671 2 times", "Call [PHONE] 2 times"),
    # SSN
    ("SSN 123-45-6789.", "SSN [SSN]."),
    ("ssn 123 45 6789", "ssn [SSN]"),
    ("My SSN is 123456789, thanks", "My SSN is [SSN], thanks"),
    # cards
    ("Card 4111 1111 1111 1111 exp 04/29", "Card [CARD] exp 04/29"),
    ("Card 4111-1111-1111-1111.", "Card [CARD]."),
    ("Card 4111111111111111.", "Card [CARD]."),
    ("Amex 378282246310005 or 3782 822463 10005", "Amex [CARD] or [CARD]"),
    ("MC 5555555555554444, 2223003122003222; Discover 6011111111111117", "MC [CARD], [CARD]; Discover [CARD]"),
    # IBAN
    ("IBAN GB82 WEST 1234 5698 7654 32 please", "IBAN [IBAN] please"),
    ("IBAN GB82WEST12345698765432.", "IBAN [IBAN]."),
    ("DE89 3704 0044 0532 0130 00 / DE89370400440532013000", "[IBAN] / [IBAN]"),
    ("FR14 2004 1010 0505 0001 3M02 606 and NL91ABNA0417164300", "[IBAN] and [IBAN]"),
    # IP addresses
    ("from 192.168.1.20 and 8.8.8.8.", "from [IP_ADDRESS] and [IP_ADDRESS]."),
    ("http://10.0.0.1:8080/admin and 10.0.0.0/24", "http://[IP_ADDRESS]:8080/admin and [IP_ADDRESS]/24"),
    ("v6 2001:db8::8a2e:370:7334 and ::1", "v6 [IP_ADDRESS] and [IP_ADDRESS]"),
    ("fe80::1ff:fe23:4567:890a, ::ffff:192.0.2.128", "[IP_ADDRESS], [IP_ADDRESS]"),
    ("https://[2001:db8::1]:443/x", "https://[[IP_ADDRESS]]:443/x"),
    ("full 2001:0db8:85a3:0000:0000:8a2e:0370:7334.", "full [IP_ADDRESS]."),
    ("IPv6:fe80::1", "IPv6:[IP_ADDRESS]"),
    # AWS
    ("key id AKIAIOSFODNN7EXAMPLE and ASIAY34FZKBOKMUTVV7A", "key id [AWS_KEY] and [AWS_KEY]"),
    (f"aws_secret_access_key = {AWS_SECRET}", "aws_secret_access_key = [AWS_KEY]"),
    (f'"SecretAccessKey": "{AWS_SECRET}",', '"SecretAccessKey": "[AWS_KEY]",'),
    (f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}", "export AWS_SECRET_ACCESS_KEY=[AWS_KEY]"),
    # API keys
    (f"key {OPENAI_KEY} fails", "key [API_KEY] fails"),
    ("OPENAI_API_KEY=sk-proj-T3BlbkFJ_a1B2c3D4e5F6g7H8i9J0kLmNoPqRs-tUvWx", "OPENAI_API_KEY=[API_KEY]"),
    (
        'ANTHROPIC_API_KEY="sk-ant-api03-Xy9_ab12CD34ef56GH78ij90KL-mnOPqrSTuvWXyz0123456789AA"',
        'ANTHROPIC_API_KEY="[API_KEY]"',
    ),
    # Slack and GitHub
    ("bot xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx.", "bot [SLACK_TOKEN]."),
    (
        "user xoxp-1234-5678-9012-abcdef0123456789, app xapp-1-A0123456789-1234567890123-ab12",
        "user [SLACK_TOKEN], app [SLACK_TOKEN]",
    ),
    ("GITHUB_TOKEN=ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", "GITHUB_TOKEN=[GITHUB_TOKEN]"),
    (
        "pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVW",
        "pat [GITHUB_TOKEN]",
    ),
    (
        "gho_16C7e42F292c6912E7710c838347Ae178B4a ghs_16C7e42F292c6912E7710c838347Ae178B4a",
        "[GITHUB_TOKEN] [GITHUB_TOKEN]",
    ),
    # JWT and Bearer
    (f"cookie session={JWT}; path=/", "cookie session=[JWT]; path=/"),
    ("Authorization: Bearer abc123def456ghi789jkl", "Authorization: Bearer [BEARER_TOKEN]"),
    ('-H "authorization: bearer 0a1b2c3d4e5f6a7b8c9d"', '-H "authorization: bearer [BEARER_TOKEN]"'),
    (f"Authorization: Bearer {JWT}", "Authorization: Bearer [JWT]"),
    (f"Authorization: Bearer {OPENAI_KEY}", "Authorization: Bearer [API_KEY]"),
    # private keys
    (f"key file:\n{PEM}\nthanks", "key file:\n[PRIVATE_KEY]\nthanks"),
    (f'"private_key": "{PEM.replace(chr(10), chr(92) + "n")}\\n"', '"private_key": "[PRIVATE_KEY]\\n"'),
    (PEM.rsplit("\n", 1)[0] + "\n\nIs this one right?", "[PRIVATE_KEY]\n\nIs this one right?"),  # no END line
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
        "[PRIVATE_KEY]",
    ),
    # URLs with credentials
    (
        "DATABASE_URL=postgres://admin:s3cr3t@db.internal:5432/app",
        "DATABASE_URL=postgres://[CREDENTIALS]@db.internal:5432/app",
    ),
    ("clone https://user:pass@host.example.com/path ok", "clone https://[CREDENTIALS]@host.example.com/path ok"),
    ("redis://:hunter2@cache:6379/0", "redis://[CREDENTIALS]@cache:6379/0"),
    (
        "https://x-access-token:ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@github.com/acme/app.git",
        "https://[CREDENTIALS]@github.com/acme/app.git",
    ),
]


@pytest.mark.parametrize(("text", "expected"), EXAMPLES)
def test_each_type_is_replaced_by_its_placeholder(text, expected):
    assert clean(text) == expected


HARD_NEGATIVES = [
    "Order #48213 shipped; ORD-2026-004512; Amazon order 113-4567890-1234567.",
    "On 2026-11-23, 11/23/2026 and 23.11.2026 at 14:30, 2:45 PM and 10:30:45.",
    "It cost $1,299.00, then €49.99, then 12.5% off.",
    "Updated from v1.2.3 to 1.2.4, then version 10.2.0.1 and Chrome 120.0.6099.109; see section 2.1.4.3.",
    "3 items, 42 seats, 1500 ms, room 1204, zip 94107-1234, ext. 4567, 555-0100.",
    "request 123e4567-e89b-12d3-a456-426614174000 at commit 9fceb02d0ae598e95dc970b74767f19372d61af8 (9fceb02)",
    "ISBN 978-3-16-148410-0 and 9783161484100; EAN 4006381333931; barcode 4006381333931.",
    "Not a card: 4111111111111112 or 4111 1111 1111 1112; INV4111111111111111; order 4111111111111111.",
    "Timestamps 1732358400 and 1732358400123.",
    "Not SSNs: 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567, 123-45-0000; nor 123456789 alone.",
    "Bad IBAN GB83 WEST 1234 5698 7654 32 and 256.1.2.3 is not an address.",
    "MAC 00:1A:2B:3C:4D:5E, colour #ff00aa, error 0x80070005, std::vector<int> and Foo::bar().",
    "Ping <@U024BE7LH>, @channel or @here; npm i @types/node react@18.2.0; logo@2x.png; git@github.com:acme/app.git",
    "A sketch, sk-ill, sk-learn and sk-learn-compatible-wrapper-module; ghp_short; eyJustkidding; AKIA is a prefix.",
    "Bearer authentication: the bearer of this note sends Authorization: Bearer <token> or Bearer $TOKEN.",
    "Call 1-800-FLOWERS or 123-456-7890; UPS 1Z999AA10123456784; scores +12.5 14.2 15.6.",
    "Server replied dGhpcyBpcyBub3QgYSBzZWNyZXQ= and https://docs.example.com:443/guide.",
]


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_look_alikes_stay_untouched(text):
    assert REDACTOR.redact(text) == RedactionResult(text, {})


def test_counts_only_the_types_found():
    result = redact("Mail a@example.com or b@example.org, or call +44 20 7946 0958.")
    assert result == RedactionResult("Mail [EMAIL] or [EMAIL], or call [PHONE].", {"EMAIL": 2, "PHONE": 1})
    assert redact("Nothing to see here.") == RedactionResult("Nothing to see here.", {})


def test_placeholders_cover_every_type_and_are_distinct():
    assert set(PLACEHOLDERS) == set(KINDS) | {"PERSON", "LOCATION"}
    assert len(set(PLACEHOLDERS.values())) == len(PLACEHOLDERS)
    assert PLACEHOLDERS["URL_CREDENTIALS"] == "[CREDENTIALS]"


def test_redacting_twice_changes_nothing():
    texts = [expected for _, expected in EXAMPLES] + [REDACTOR.redact(s.text).text for s in SAMPLE]
    texts.append(" ".join(PLACEHOLDERS.values()))
    for text in texts:
        assert REDACTOR.redact(text) == RedactionResult(text, {}), text


def test_precision_and_recall_on_the_labelled_sample():
    """Span-level and strict: a finding counts only with the exact start, end and type."""
    true_pos: Counter[str] = Counter()
    false_pos: Counter[str] = Counter()
    false_neg: Counter[str] = Counter()
    for sample in SAMPLE:
        found, expected = set(REDACTOR.find(sample.text)), set(sample.spans)
        true_pos.update(f.kind for f in found & expected)
        false_pos.update(f.kind for f in found - expected)
        false_neg.update(s.kind for s in expected - found)

    def ratio(hits: int, misses: int) -> float:
        return hits / (hits + misses) if hits + misses else 1.0

    print(f"\n{len(SAMPLE)} texts, {sum(len(s.spans) for s in SAMPLE)} labelled spans")
    print(f"{'type':16} {'spans':>5} {'precision':>9} {'recall':>7}")
    for kind in KINDS:
        spans = true_pos[kind] + false_neg[kind]
        precision, recall = ratio(true_pos[kind], false_pos[kind]), ratio(true_pos[kind], false_neg[kind])
        print(f"{kind:16} {spans:5d} {precision:9.3f} {recall:7.3f}")
        assert spans >= 100, f"the sample holds too few {kind} spans to measure"
        assert recall >= 0.9, kind
    tp, fp, fn = sum(true_pos.values()), sum(false_pos.values()), sum(false_neg.values())
    print(f"{'overall':16} {tp + fn:5d} {ratio(tp, fp):9.3f} {ratio(tp, fn):7.3f}")
    assert ratio(tp, fp) >= 0.97
    assert ratio(tp, fn) >= 0.97


def test_the_sample_is_the_same_on_every_run():
    assert labelled_sample(50) == labelled_sample(50)
    assert labelled_sample(50, seed=1) != labelled_sample(50)


def test_number_hints_lose_nothing():
    """Searching numbers only near their hints finds exactly what searching the whole text finds."""
    rng = random.Random(11)
    texts = [s.text for s in SAMPLE] + [support_text(rng, chars=3000, pii_items=3) for _ in range(100)]
    for text in texts:
        assert pii._find_numbers(text, pii._shape(text)) == pii._numbers_in(text, [(0, len(text))]), text


@pytest.mark.parametrize(
    "text",
    ["1" * 30000, "4111 " * 6000, "+1" * 10000, "a@" * 10000, "1:" * 10000, "::" * 10000, "eyJ" * 10000,
     "sk-" * 10000, "-----BEGIN PRIVATE KEY-----\n" * 1000, "GB82 " * 6000, "(415) " * 5000],
)  # fmt: skip
def test_pathological_input_finishes(text):
    assert isinstance(REDACTOR.redact(text).text, str)


def test_non_text_input_is_refused():
    with pytest.raises(InvalidInput, match="`text` must be a str, got bytes"):
        REDACTOR.redact(b"jane@example.com")  # type: ignore[arg-type]  # deliberately wrong type
    with pytest.raises(InvalidInput, match="`use_presidio` must be True, False or None"):
        Redactor(use_presidio="yes")  # type: ignore[arg-type]  # deliberately wrong type


# --- the report ----------------------------------------------------------------------------------------------------


def test_report_adds_in_place_and_merges_into_a_new_report():
    report = RedactionReport()
    report.add({"EMAIL": 2, "PHONE": 1})
    report.add({})
    report.add(redact("card 4111 1111 1111 1111, mail x@example.com").counts)
    assert report == RedactionReport(total=5, by_type={"EMAIL": 3, "PHONE": 1, "CARD": 1})

    other = RedactionReport(total=2, by_type={"CARD": 1, "IBAN": 1})
    merged = report.merge(other)
    assert merged == RedactionReport(total=7, by_type={"EMAIL": 3, "PHONE": 1, "CARD": 2, "IBAN": 1})
    assert report.total == 5 and other.total == 2  # inputs unchanged
    assert RedactionReport.model_validate_json(merged.model_dump_json()) == merged


def test_reports_do_not_share_their_counts():
    first, second = RedactionReport(), RedactionReport()
    first.add({"SSN": 1})
    assert second.by_type == {} and second.total == 0


def test_report_refuses_unknown_types_and_negative_counts():
    with pytest.raises(InvalidInput, match="unknown redaction type 'MAIL'"):
        RedactionReport().add({"MAIL": 1})
    with pytest.raises(InvalidInput, match="non-negative int"):
        RedactionReport().add({"EMAIL": -1})


# --- workers and presidio ------------------------------------------------------------------------------------------


def test_redactor_pickles_as_its_settings():
    copy = pickle.loads(pickle.dumps(REDACTOR))
    assert copy.use_presidio is False
    assert copy.redact("x jane@example.com") == REDACTOR.redact("x jane@example.com")
    assert len(pickle.dumps(Redactor())) < 200


@pytest.mark.skipif(pii.presidio_installed(), reason="presidio is installed here")
def test_requiring_presidio_without_it_says_how_to_install_it():
    with pytest.raises(InvalidInput, match=r"pip install 'finetune-ops\[presidio\]'"):
        Redactor(use_presidio=True)
    assert Redactor().runs_presidio is False
    assert Redactor(use_presidio=None).redact("Maria lives in Lisbon.").text == "Maria lives in Lisbon."


class FakeResult:
    def __init__(self, entity_type: str, start: int, end: int) -> None:
        self.entity_type, self.start, self.end, self.score = entity_type, start, end, 0.85


class FakeAnalyzer:
    """Tags fixed strings the way presidio's spaCy recognizer would; also tags the word PERSON, as a model might."""

    TAGS = {"Maria Garcia": "PERSON", "Lisbon": "LOCATION", "PERSON": "PERSON", "maria@example.com": "PERSON"}

    def analyze(self, *, text: str, language: str, entities: list[str]):
        assert language == "en" and set(entities) == {"PERSON", "LOCATION"}
        results = []
        for needle, entity in self.TAGS.items():
            start = text.find(needle)
            if start != -1:
                results.append(FakeResult(entity, start, start + len(needle)))
        return results


@pytest.fixture
def fake_presidio(monkeypatch):
    module = types.ModuleType("presidio_analyzer")
    module.__spec__ = importlib.machinery.ModuleSpec("presidio_analyzer", None)
    monkeypatch.setattr(module, "AnalyzerEngine", FakeAnalyzer, raising=False)
    monkeypatch.setitem(sys.modules, "presidio_analyzer", module)
    pii._presidio_engine.cache_clear()
    yield module
    pii._presidio_engine.cache_clear()


def test_names_and_places_come_from_presidio_when_installed(fake_presidio):
    redactor = Redactor()
    assert redactor.runs_presidio is True
    result = redactor.redact("Maria Garcia moved to Lisbon; mail maria@example.com.")
    assert result == RedactionResult(
        "[PERSON] moved to [LOCATION]; mail [EMAIL].", {"PERSON": 1, "LOCATION": 1, "EMAIL": 1}
    )
    assert redactor.redact(result.text) == RedactionResult(result.text, {})


def test_presidio_is_never_used_when_turned_off(fake_presidio):
    fake_presidio.AnalyzerEngine = None  # building it would fail
    assert Redactor(use_presidio=False).redact("Maria Garcia moved to Lisbon.").text == "Maria Garcia moved to Lisbon."

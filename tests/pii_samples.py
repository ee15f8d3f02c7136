"""Seeded support-desk text with every PII span labelled, for measuring redaction, and PII-free text for benchmarks.

A sample mixes sentences that carry PII (several real-world formats per type,
valid check digits computed here) with sentences full of things that look like
PII and are not: order numbers, dates, prices, versions, UUIDs, SHAs, ISBNs,
card-length numbers that fail Luhn, SSNs the SSA never issues, IBANs with wrong
check digits. The same seed always gives the same texts.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import string
import uuid
from collections.abc import Callable
from typing import NamedTuple

KINDS = (
    "EMAIL", "PHONE", "SSN", "CARD", "IBAN", "IP_ADDRESS", "AWS_KEY", "API_KEY", "SLACK_TOKEN", "GITHUB_TOKEN",
    "JWT", "BEARER_TOKEN", "PRIVATE_KEY", "URL_CREDENTIALS",
)  # fmt: skip

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"


class Span(NamedTuple):
    start: int
    end: int
    kind: str


class Sample(NamedTuple):
    text: str
    spans: tuple[Span, ...]


Piece = str | tuple[str, str]  # plain text, or (kind, value): a labelled span


def labelled_sample(n: int = 3000, *, seed: int = 20261123) -> list[Sample]:
    """`n` texts of one to five sentences; about three in four carry PII, nearly all carry look-alikes."""
    rng = random.Random(seed)
    return [_sample(rng) for _ in range(n)]


def support_text(rng: random.Random, *, chars: int, pii_items: int = 0) -> str:
    """Support-desk prose of about `chars` characters with `pii_items` PII sentences mixed in (for benchmarks).

    Everyday numbers (order numbers, dates, prices, versions, times) are in about a third of the sentences, log and
    code lines in one in ten, the hard look-alikes of the labelled sample in one in fifty.
    """
    sentences = [_assemble(_pii_sentence(rng, rng.choice(KINDS))).text for _ in range(pii_items)]
    size = sum(map(len, sentences))
    while size < chars:
        roll = rng.random()
        if roll < 0.02:
            sentence = _assemble(_negative_sentence(rng)).text
        elif roll < 0.12:
            sentence = _tech_line(rng)
        elif roll < 0.40:
            sentence = _everyday(rng)
        else:
            sentence = _filler(rng)
        sentences.append(sentence)
        size += len(sentence) + 1
    rng.shuffle(sentences)
    return " ".join(sentences)


def _sample(rng: random.Random) -> Sample:
    sentences = [_pii_sentence(rng, rng.choice(KINDS)) for _ in range(rng.choices((0, 1, 2), (25, 55, 20))[0])]
    sentences += [_negative_sentence(rng) for _ in range(rng.randint(1, 2))]
    sentences += [[_filler(rng)] for _ in range(rng.randint(0, 1))]
    rng.shuffle(sentences)
    pieces: list[Piece] = []
    for i, sentence in enumerate(sentences):
        if i:
            pieces.append(rng.choice((" ", " ", "\n", "\n\n")))
        pieces += sentence
    return _assemble(pieces)


def _assemble(pieces: list[Piece]) -> Sample:
    parts, spans, pos = [], [], 0
    for piece in pieces:
        if isinstance(piece, tuple):
            kind, piece = piece
            spans.append(Span(pos, pos + len(piece), kind))
        parts.append(piece)
        pos += len(piece)
    return Sample("".join(parts), tuple(spans))


def _fill(template: str, item: list[Piece]) -> list[Piece]:
    before, after = template.split("{}")
    return [before, *item, after]


def _pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


# --- PII, by type: each generator gives the pieces of one item, labelled span included -------------------------------

FIRST = ("jane", "omar", "li", "maria", "john", "aisha", "pierre", "sven", "yuki", "carlos", "fatima", "noah", "olga")
LAST = ("doe", "haddad", "wei", "garcia", "smith", "khan", "dubois", "larsen", "tanaka", "silva", "novak", "brown")
DOMAINS = (
    "example.com",
    "example.org",
    "acme.io",
    "mail.example.co.uk",
    "uni-example.edu",
    "firma.de",
    "shop.example.fr",
)


def _email(rng: random.Random) -> list[Piece]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice(
        (f"{first}.{last}", f"{first}{rng.randint(1, 99)}", f"{first[0]}{last}", f"{first}_{last}+support",
         f"{first}-{last}", f"{first.upper()}.{last.upper()}")
    )  # fmt: skip
    return [("EMAIL", f"{local}@{rng.choice(DOMAINS)}")]


def _nanp_parts(rng: random.Random) -> tuple[int, int, str]:
    return rng.randint(2, 9) * 100 + rng.randint(0, 99), rng.randint(200, 999), f"{rng.randint(0, 9999):04d}"


def _phone(rng: random.Random) -> list[Piece]:
    a, e, n = _nanp_parts(rng)
    d = lambda k: _pick(rng, string.digits, k)  # noqa: E731
    digit = rng.randint(1, 9)
    formats = (
        # North American
        f"({a}) {e}-{n}", f"{a}-{e}-{n}", f"{a}.{e}.{n}", f"{a} {e}-{n}", f"({a}){e}-{n}", f"1-800-{e}-{n}",
        f"+1 ({a}) {e}-{n}", f"+1-{a}-{e}-{n}", f"+1 {a} {e} {n}", f"+1 {a}.{e}.{n}", f"+1{a}{e}{n}",
        # UK, national and international
        f"+44 20 {rng.randint(7000, 7999)} {d(4)}", f"+44 (0)20 7946 {d(4)}", f"+44 7700 {d(6)}", f"+447700{d(6)}",
        f"020 7946 {d(4)}", f"07700 900{d(3)}",
        # France, Germany, elsewhere
        f"+33 {digit} {d(2)} {d(2)} {d(2)} {d(2)}", f"0{digit} {d(2)} {d(2)} {d(2)} {d(2)}",
        f"+49 30 {d(6)}", f"+49 89 {d(7)}", f"+49 151 {d(8)}", f"+81 3-{d(4)}-{d(4)}", f"+91 {rng.randint(6, 9)}{d(4)} {d(5)}",
        f"+61 2 {d(4)} {d(4)}", f"+55 11 9{d(4)}-{d(4)}", f"+34 6{d(2)} {d(3)} {d(3)}", f"+31 20 {d(3)} {d(4)}",
    )  # fmt: skip
    return [("PHONE", rng.choice(formats))]


def _ssn(rng: random.Random) -> list[Piece]:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    sep = rng.choice("--- ")
    return [("SSN", f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}")]


def luhn_check_digit(partial: str) -> str:
    """The digit that makes `partial + digit` pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str(-total % 10)


def card_number(rng: random.Random) -> str:
    prefix, length = rng.choice(
        (("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), (str(rng.randint(2221, 2720)), 16), ("34", 15),
         ("37", 15), ("6011", 16), ("65", 16))
    )  # fmt: skip
    body = prefix + _pick(rng, string.digits, length - len(prefix) - 1)
    return body + luhn_check_digit(body)


def _group(digits: str, sizes: tuple[int, ...], sep: str) -> str:
    out, i = [], 0
    for size in sizes:
        out.append(digits[i : i + size])
        i += size
    return sep.join(out)


def _card_text(rng: random.Random, digits: str) -> str:
    if len(digits) == 13 or rng.random() < 0.3:
        return digits
    sizes = (4, 6, 5) if len(digits) == 15 else (4, 4, 4, 4, 3)[: (len(digits) + 3) // 4]
    return _group(digits, sizes, rng.choice((" ", " ", "-")))


def _card(rng: random.Random) -> list[Piece]:
    return [("CARD", _card_text(rng, card_number(rng)))]


BBAN = {  # per country: a = upper-case letter, n = digit (a simplified but length-correct layout)
    "GB": "aaaa" + "n" * 14, "DE": "n" * 18, "FR": "n" * 23, "ES": "n" * 20, "IT": "a" + "n" * 22, "NL": "aaaa" + "n" * 10,
    "BE": "n" * 12, "CH": "n" * 17, "AT": "n" * 16, "IE": "aaaa" + "n" * 14, "PL": "n" * 24, "SE": "n" * 20,
    "NO": "n" * 11, "DK": "n" * 14, "PT": "n" * 21,
}  # fmt: skip


def iban(rng: random.Random, *, valid: bool = True) -> str:
    country = rng.choice(sorted(BBAN))
    bban = "".join(rng.choice(string.ascii_uppercase if c == "a" else string.digits) for c in BBAN[country])
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    if not valid:
        check = rng.choice([c for c in range(2, 99) if c != check])
    return f"{country}{check:02d}{bban}"


def _iban_text(rng: random.Random, value: str) -> str:
    return value if rng.random() < 0.4 else " ".join(value[i : i + 4] for i in range(0, len(value), 4))


def _iban(rng: random.Random) -> list[Piece]:
    return [("IBAN", _iban_text(rng, iban(rng)))]


def _ipv4(rng: random.Random) -> str:
    return ".".join(
        str(x) for x in (rng.randint(1, 223), rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))
    )


def _ipv6(rng: random.Random) -> str:
    groups = [rng.getrandbits(16) for _ in range(8)]
    style = rng.randint(0, 4)
    if style == 0:
        return ":".join(f"{g:04x}" for g in groups)  # full form
    if style == 1:
        return rng.choice(("::1", "fe80::1", "2001:db8::1", f"::ffff:{_ipv4(rng)}"))
    zeros = rng.randint(2, 5)
    start = rng.randint(0, 8 - zeros)
    groups[start : start + zeros] = [0] * zeros
    return str(ipaddress.IPv6Address(b"".join(g.to_bytes(2, "big") for g in groups)))  # compressed form


def _ip(rng: random.Random) -> list[Piece]:
    address = _ipv4(rng) if rng.random() < 0.55 else _ipv6(rng)
    bracketed = "[{}]" if ":" in address else "{}"  # IPv6 in a URL or before a port goes in brackets
    wrap = rng.choice(("{}", "{}", f"http://{bracketed}/admin", f"{bracketed}:8443", "{}/24"))
    before, after = wrap.split("{}")
    return [before, ("IP_ADDRESS", address), after]


def _aws(rng: random.Random) -> list[Piece]:
    if rng.random() < 0.5:
        return [("AWS_KEY", rng.choice(("AKIA", "ASIA")) + _pick(rng, string.ascii_uppercase + "234567", 16))]
    label = rng.choice(
        ("aws_secret_access_key = {}", "AWS_SECRET_ACCESS_KEY={}", '"SecretAccessKey": "{}"',
         "export AWS_SECRET_ACCESS_KEY='{}'", "secret access key: {}")
    )  # fmt: skip
    before, after = label.split("{}")
    return [before, ("AWS_KEY", _pick(rng, B64, 40)), after]


def _api_key(rng: random.Random) -> list[Piece]:
    key = rng.choice(
        ("sk-" + _pick(rng, ALNUM, 48), "sk-proj-" + _pick(rng, B64URL, rng.randint(100, 156)),
         "sk-ant-api03-" + _pick(rng, B64URL, 93) + "AA", "sk-svcacct-" + _pick(rng, B64URL, 120))
    )  # fmt: skip
    return [("API_KEY", key)]


def _slack(rng: random.Random) -> list[Piece]:
    d = lambda k: _pick(rng, string.digits, k)  # noqa: E731
    app_id = "A" + _pick(rng, string.ascii_uppercase + string.digits, 10)
    token = rng.choice(
        (f"xoxb-{d(12)}-{d(13)}-{_pick(rng, ALNUM, 24)}", f"xoxp-{d(12)}-{d(12)}-{d(13)}-{_pick(rng, HEX, 32)}",
         f"xoxa-2-{d(12)}-{_pick(rng, ALNUM, 32)}", f"xoxr-{d(10)}-{_pick(rng, ALNUM, 30)}",
         f"xoxs-{d(12)}-{d(12)}-{_pick(rng, HEX, 40)}", f"xapp-1-{app_id}-{d(13)}-{_pick(rng, HEX, 64)}")
    )  # fmt: skip
    return [("SLACK_TOKEN", token)]


def _github(rng: random.Random) -> list[Piece]:
    if rng.random() < 0.25:
        return [("GITHUB_TOKEN", f"github_pat_{_pick(rng, ALNUM, 22)}_{_pick(rng, ALNUM, 59)}")]
    return [("GITHUB_TOKEN", rng.choice(("ghp_", "gho_", "ghu_", "ghs_", "ghr_")) + _pick(rng, ALNUM, 36))]


def _b64url_json(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def _jwt(rng: random.Random) -> list[Piece]:
    alg = rng.choice(("HS256", "RS256"))
    header = _b64url_json({"alg": alg, "typ": "JWT"})
    claims = {"sub": str(rng.randint(1, 10**9)), "name": rng.choice(FIRST), "iat": rng.randint(17 * 10**8, 18 * 10**8)}
    payload = _b64url_json(claims)
    signature = _pick(rng, B64URL, 43 if alg == "HS256" else 342)
    return [("JWT", f"{header}.{payload}.{signature}")]


def _bearer(rng: random.Random) -> list[Piece]:
    template = rng.choice(("Authorization: Bearer {}", "-H 'Authorization: Bearer {}'", '"Authorization": "bearer {}"'))
    return _fill(template, [("BEARER_TOKEN", _pick(rng, ALNUM + "._-", rng.randint(24, 64)))])


def _private_key(rng: random.Random) -> list[Piece]:
    label = rng.choice(("RSA ", "", "EC ", "OPENSSH ", "ENCRYPTED "))
    lines = [_pick(rng, B64, 64) for _ in range(rng.randint(3, 9))] + [_pick(rng, B64, rng.randint(8, 60)) + "=="]
    newline = "\\n" if rng.random() < 0.3 else "\n"  # pasted from a JSON credentials file, or as-is
    block = (
        f"-----BEGIN {label}PRIVATE KEY-----{newline}"
        + newline.join(lines)
        + f"{newline}-----END {label}PRIVATE KEY-----"
    )
    return [
        '"private_key": "' if newline == "\\n" else "\n",
        ("PRIVATE_KEY", block),
        '\\n"' if newline == "\\n" else "\n",
    ]


def _url_credentials(rng: random.Random) -> list[Piece]:
    scheme, host = rng.choice(
        (("https", ["git.example.com/acme/app.git"]), ("postgres", ["db.internal:5432/app"]),
         ("mysql", [("IP_ADDRESS", _ipv4(rng)), ":3306/shop"]), ("redis", ["cache.internal:6379/0"]),
         ("amqp", ["mq.example.com/vhost"]), ("mongodb+srv", ["cluster0.example.net/prod"]), ("ftp", ["files.example.com/in"]))
    )  # fmt: skip
    user = (
        "" if scheme == "redis" else rng.choice((rng.choice(FIRST), "admin", "deploy", "svc_backup", "x-access-token"))
    )
    password = _pick(rng, ALNUM + "!$*_.~-", rng.randint(8, 24)) + rng.choice(("", "%40x", "!"))
    return [f"{scheme}://", ("URL_CREDENTIALS", f"{user}:{password}"), "@", *host]


ITEMS: dict[str, Callable[[random.Random], list[Piece]]] = {
    "EMAIL": _email, "PHONE": _phone, "SSN": _ssn, "CARD": _card, "IBAN": _iban, "IP_ADDRESS": _ip, "AWS_KEY": _aws,
    "API_KEY": _api_key, "SLACK_TOKEN": _slack, "GITHUB_TOKEN": _github, "JWT": _jwt, "BEARER_TOKEN": _bearer,
    "PRIVATE_KEY": _private_key, "URL_CREDENTIALS": _url_credentials,
}  # fmt: skip

TEMPLATES: dict[str, tuple[str, ...]] = {
    "EMAIL": ("You can reach me at {} anytime.", "Please send the invoice to {}, not to my old address.",
              "Contact: {}", "I changed my login email to {} yesterday (order #48213).", "<mailto:{}>", "cc {};"),
    "PHONE": ("Call me back on {} after 5pm.", "My number is {}.", "Phone: {}", "Reach our office at {} (Mon-Fri 9-5).",
              "Tried {} three times, no answer.", "tel: {}"),
    "SSN": ("My SSN is {} if you need it for the tax form.", "SSN: {}", "For verification, social security number {}.",
            "The W-9 lists {} as my SSN."),
    "CARD": ("I paid with card {} and was charged twice.", "Card number: {} exp 04/29 cvv 123.",
             "Please refund to {}.", "Charged $49.99 on {} on 2026-11-23."),
    "IBAN": ("Please wire the refund to IBAN {}.", "My IBAN is {} (Sparkasse).", "IBAN: {}",
             "Bank details: {}, BIC DEUTDEFF."),
    "IP_ADDRESS": ("Login attempts came from {} last night.", "The server at {} keeps timing out.",
                   "My IP is {}.", "Whitelist {} please."),
    "AWS_KEY": ("Here is the config: {}", "I set {} in the env and it still fails.", "Leaked in the logs: {}."),
    "API_KEY": ("My OpenAI key {} stopped working.", "OPENAI_API_KEY={}", "I used key {} in the request.",
                "ANTHROPIC_API_KEY=\"{}\""),
    "SLACK_TOKEN": ("The bot token is {}.", "SLACK_BOT_TOKEN={}", "I pasted {} into the settings page."),
    "GITHUB_TOKEN": ("Use this token: {}", "GITHUB_TOKEN={}", "The CI secret {} expired."),
    "JWT": ("The session cookie was {}.", "token={}", "Decode this JWT for me: {}"),
    "BEARER_TOKEN": ("I'm calling the API with {} and get 401.", "Request headers: {}", "curl https://api.example.com/v1/me {}"),
    "PRIVATE_KEY": ("Here is the key file:{}Can you check it?", "service account: {{}}", "My deploy key is{}"),
    "URL_CREDENTIALS": ("The connection string is {}.", "DATABASE_URL={}", "git clone {} fails with 403.",
                        "Set the broker to {} and restart."),
}  # fmt: skip


BARE_SSN_TEMPLATES = ("My SSN is {}.", "SSN: {}", "social security number {} (for the W-9)")


def _pii_sentence(rng: random.Random, kind: str) -> list[Piece]:
    if kind == "SSN" and rng.random() < 0.2:  # nine bare digits are an SSN only next to a label
        ssn = ITEMS["SSN"](rng)[0][1].replace("-", "").replace(" ", "")
        return _fill(rng.choice(BARE_SSN_TEMPLATES), [("SSN", ssn)])
    return _fill(rng.choice(TEMPLATES[kind]), ITEMS[kind](rng))


# --- look-alikes and plain prose -----------------------------------------------------------------------------------


def _isbn13(rng: random.Random) -> str:
    body = "978" + _pick(rng, string.digits, 9)
    check = -sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body)) % 10
    return body + str(check)


def _ean13(rng: random.Random) -> str:
    """A product barcode: a GS1 prefix (France, Germany, Japan, UK), nine digits and its EAN-13 check digit."""
    body = rng.choice(("30", "34", "40", "42", "45", "49", "50")) + _pick(rng, string.digits, 10)
    return body + str(-sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body)) % 10)


def _failing_luhn(rng: random.Random) -> str:
    digits = card_number(rng)
    return digits[:-1] + str((int(digits[-1]) + rng.randint(1, 9)) % 10)


def _invalid_ssn(rng: random.Random) -> str:
    area, group, serial = rng.randint(1, 899), rng.randint(1, 99), rng.randint(1, 9999)
    broken = rng.choice(("area0", "area666", "area9xx", "group", "serial"))
    area = {"area0": 0, "area666": 666, "area9xx": rng.randint(900, 999)}.get(broken, area)
    group = 0 if broken == "group" else group
    serial = 0 if broken == "serial" else serial
    return f"{area:03d}-{group:02d}-{serial:04d}"


def _look_alike(rng: random.Random) -> str:
    """One thing that looks like PII and is not."""
    d = lambda k: _pick(rng, string.digits, k)  # noqa: E731
    r = rng.randint
    makers = (
        # order numbers, tickets, tracking ids, barcodes
        lambda: f"#{r(10000, 9999999)}", lambda: f"ORD-2026-{d(6)}", lambda: f"{d(3)}-{d(7)}-{d(7)}",
        lambda: f"order {d(16)}", lambda: f"tracking no. {d(14)}", lambda: f"case {d(8)}", lambda: f"room {d(4)}",
        lambda: f"1Z{_pick(rng, string.ascii_uppercase + string.digits, 6)}{d(10)}", lambda: f"EAN {_ean13(rng)}",
        lambda: _ean13(rng), lambda: _isbn13(rng), lambda: "978-3-16-148410-0", lambda: f"zip {d(5)}-{d(4)}",
        # dates, times, timestamps
        lambda: f"2026-{r(1, 12):02d}-{r(1, 28):02d}", lambda: f"{r(1, 12)}/{r(1, 28)}/2026",
        lambda: f"{r(1, 28):02d}.{r(1, 12):02d}.2026", lambda: f"2026-11-23T{r(0, 23):02d}:30:00Z",
        lambda: f"{r(0, 23):02d}:{r(0, 59):02d}", lambda: f"{r(1, 12)}:45 PM", lambda: "10:30:45",
        lambda: str(r(16 * 10**8, 18 * 10**8)), lambda: str(r(16 * 10**11, 18 * 10**11)),
        # prices, figures, versions
        lambda: f"${r(1, 9)},{d(3)}.{d(2)}", lambda: f"€{r(1, 999)}.{d(2)}", lambda: f"{r(1, 99)}.5%",
        lambda: f"{r(2, 40)} items", lambda: f"+{r(1, 30)}.{d(1)} {r(1, 30)}.{d(1)} {r(1, 30)}.{d(1)}", lambda: "+/- 5",
        lambda: f"v{r(0, 9)}.{r(0, 20)}.{r(0, 30)}", lambda: f"{r(0, 9)}.{r(0, 20)}.{r(0, 30)}",
        lambda: f"version {r(1, 12)}.{r(0, 9)}.{r(0, 9)}.{r(0, 99)}", lambda: f"Chrome 120.0.{d(4)}.{d(3)}",
        lambda: f"section {r(1, 9)}.{r(1, 9)}.{r(1, 9)}.{r(1, 9)}", lambda: f"{r(1, 9)} {d(3)} {d(3)}",
        # ids and hashes
        lambda: str(uuid.UUID(int=rng.getrandbits(128))), lambda: _pick(rng, HEX, 40), lambda: _pick(rng, HEX, 7),
        lambda: f"#{_pick(rng, HEX, 6)}", lambda: "0x80070005", lambda: "00:1A:2B:3C:4D:5E", lambda: "std::vector<int>",
        lambda: "dGhpcyBpcyBub3QgYSBzZWNyZXQ=",
        # numbers that fail their checks
        lambda: _failing_luhn(rng), lambda: _card_text(rng, _failing_luhn(rng)), lambda: "INV" + card_number(rng),
        lambda: _invalid_ssn(rng), lambda: _iban_text(rng, iban(rng, valid=False)), lambda: f"{r(256, 999)}.1.2.3",
        lambda: f"{d(4)} {d(4)}", lambda: f"ext. {d(4)}", lambda: f"555-{d(4)}", lambda: "1-800-FLOWERS",
        # words and handles
        lambda: "<@U024BE7LH>", lambda: "@channel", lambda: "@types/node", lambda: "logo@2x.png", lambda: "react@18.2.0",
        lambda: "git@github.com:acme/app.git", lambda: "sketch", lambda: "sk-ill", lambda: "sk-learn",
        lambda: "sk-learn-compatible-wrapper-module", lambda: "task-runner", lambda: "Bearer <token>",
        lambda: "Bearer $TOKEN", lambda: "the bearer of this note", lambda: "eyJustkidding", lambda: "AKIA is a prefix",
        lambda: "ghp_short",
    )  # fmt: skip
    return rng.choice(makers)()


NEGATIVE_TEMPLATES = (
    "Your order {} has shipped.",
    "I was charged on {} and the receipt says otherwise.",
    "The app shows {} in the corner.",
    "Reference: {}",
    "We saw {} in the logs.",
    "See {} for details.",
    "Is {} the right value?",
    "It says {} now.",
    "Ticket {} was closed by mistake.",
    "Support replied with {}.",
    "Updated to {} this morning.",
)

FILLER = (
    "Thanks for reaching out, happy to help with this.",
    "I'm sorry for the trouble you've had with the delivery.",
    "Could you confirm which plan you're on?",
    "Let me check with the billing team and get back to you.",
    "The refund should show up within 3-5 business days.",
    "Please sign out, clear the cache and sign back in.",
    "Our team is available Monday to Friday, 9am to 6pm CET.",
    "I've escalated this to our engineers.",
    "The sync job failed twice overnight; the retry succeeded.",
    "Is there anything else I can help you with today?",
    "Your subscription renews on the 1st of each month.",
    "We rolled back the release and the issue is gone.",
    "The export finished with 2 warnings and 0 errors.",
    "I followed the steps in the help article but it still fails.",
    "Can you share a screenshot of the error message?",
    "We've applied a 20% discount to your next invoice.",
    "This looks like a known issue in the mobile app; a fix ships next week.",
    "The package was left at the front desk.",
    "Two of the 14 items arrived damaged, the rest were fine.",
    "Thanks, that worked! Closing the ticket.",
    "I’ve forwarded this to our logistics team — they’ll reply within a day.",
    "Merci, ça marche maintenant !",
    "Thanks so much, that fixed it 🙂",
    "We’re sorry… the courier missed the pickup.",
)


EVERYDAY = (
    "Your order #{order} shipped on {date} and should arrive by Friday.",
    "I was charged {price} twice on {date}.",
    "The refund of {price} was issued on {date}; it can take 3-5 business days.",
    "After updating to version {version} the app crashes on launch.",
    "Can you call me back tomorrow around {time}?",
    "Ticket {ticket} has been escalated to tier 2.",
    "You have {n} of {m} seats in use on the Team plan.",
    "The invoice for March is {price}, due on {date}.",
    "Delivery window: {time}-{time2}.",
    "I tried {n} times between {time} and {time2} yesterday.",
    "Your subscription renews on {date} at {price}/month.",
    "Order {amazon} was split into {n} shipments.",
    "We’ve credited {price} to your account — sorry again!",
)
TECH = (
    "{iso} ERROR sync failed request_id={uuid} after {ms} ms",
    "GET /api/v2/orders?page={n} returned {status} in {ms}ms",
    "commit {sha}: fix timezone handling in export",
    'File "app/billing.py", line {n}, in charge',
    "Build {build} failed on step {n} of {m}.",
    "The webhook responded with HTTP {status} at {iso}.",
    "Stack: NullPointerException at OrderService.java:{n}",
    "See https://docs.example.com/guides/export-{n} for the steps.",
)


def _everyday(rng: random.Random) -> str:
    d = lambda k: _pick(rng, string.digits, k)  # noqa: E731
    return rng.choice(EVERYDAY).format(
        order=rng.randint(10000, 9999999), date=f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        price=f"${rng.randint(1, 999)}.{d(2)}", version=f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        time=f"{rng.randint(8, 11)}:{rng.choice(('00', '15', '30', '45'))}", time2=f"{rng.randint(1, 6)}:00 pm",
        ticket=f"ORD-2026-{d(6)}", n=rng.randint(2, 40), m=rng.randint(41, 90), amazon=f"1{d(2)}-{d(7)}-{d(7)}",
    )  # fmt: skip


def _tech_line(rng: random.Random) -> str:
    return rng.choice(TECH).format(
        iso=f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
        uuid=uuid.UUID(int=rng.getrandbits(128)), ms=rng.randint(20, 30000), n=rng.randint(1, 400),
        m=rng.randint(401, 900), status=rng.choice((200, 404, 500, 502, 504)), sha=_pick(rng, HEX, 7),
        build=rng.randint(1000, 99999),
    )  # fmt: skip


def _negative_sentence(rng: random.Random) -> list[Piece]:
    return _fill(rng.choice(NEGATIVE_TEMPLATES), [_look_alike(rng)])


def _filler(rng: random.Random) -> str:
    return rng.choice(FILLER)

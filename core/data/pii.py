"""PII and secret redaction: replace what identifies a person or opens a system with a typed placeholder.

This runs on every feedback event at ingest and on every example at export, and most texts hold nothing to
redact, so speed sets the shape of the code:

- each detector first tests for something its matches cannot lack, a rare character where there is one (no ``@``,
  no email scan), and runs its regex only when that is there;
- numbers are found from hints in the text's *shape*, a byte copy whose digits are all ``0``, where the fixed
  substrings a card, SSN, IBAN or phone must hold (``0|0000``: a digit, a separator, four digits) are plain
  substring tests; number patterns then run only in short windows around the hints;
- check digits (Luhn, mod-97), ``ipaddress`` and context rules run only on the few candidates left.

Every detector reads the original text, and findings that overlap are settled by priority (a key inside a Bearer
header is an API key; the IPv4 tail of an IPv6 address is part of that address). No placeholder looks like anything
a detector finds, so redacting twice changes nothing.

Names and locations come from Microsoft presidio when it is installed (the ``presidio`` extra); everything else is
the standard library.
"""

from __future__ import annotations

import bisect
import functools
import importlib.util
import ipaddress
import re
from collections.abc import Callable
from typing import Any, NamedTuple, overload

from pydantic import BaseModel

from core.errors import InvalidInput

PLACEHOLDERS: dict[str, str] = {
    "EMAIL": "[EMAIL]",
    "PHONE": "[PHONE]",
    "SSN": "[SSN]",
    "CARD": "[CARD]",
    "IBAN": "[IBAN]",
    "IP_ADDRESS": "[IP_ADDRESS]",
    "AWS_KEY": "[AWS_KEY]",
    "API_KEY": "[API_KEY]",
    "SLACK_TOKEN": "[SLACK_TOKEN]",
    "GITHUB_TOKEN": "[GITHUB_TOKEN]",
    "JWT": "[JWT]",
    "BEARER_TOKEN": "[BEARER_TOKEN]",
    "PRIVATE_KEY": "[PRIVATE_KEY]",
    "URL_CREDENTIALS": "[CREDENTIALS]",
    "PERSON": "[PERSON]",
    "LOCATION": "[LOCATION]",
}

_PRESIDIO_HINT = (
    "Install it with `pip install 'finetune-ops[presidio]'`, or pass use_presidio=None to use it only when installed."
)


class RedactionResult(NamedTuple):
    text: str
    counts: dict[str, int]


class Finding(NamedTuple):
    """A span of the original text and the type of what it holds."""

    start: int
    end: int
    kind: str


class RedactionReport(BaseModel):
    """Redactions summed over many texts, for ingest and export summaries."""

    total: int = 0
    by_type: dict[str, int] = {}

    def add(self, counts: dict[str, int]) -> None:
        """Count one text's redactions (a `RedactionResult.counts`) into this report."""
        for kind, n in counts.items():
            _check_count(kind, n)
            self.by_type[kind] = self.by_type.get(kind, 0) + n
            self.total += n

    def merge(self, other: RedactionReport) -> RedactionReport:
        """A new report holding both; neither input changes, so partial reports from workers can be combined freely."""
        by_type = dict(self.by_type)
        for kind, n in other.by_type.items():
            by_type[kind] = by_type.get(kind, 0) + n
        return RedactionReport(total=self.total + other.total, by_type=by_type)


def _check_count(kind: str, n: int) -> None:
    if kind not in PLACEHOLDERS:
        raise InvalidInput(f"unknown redaction type {kind!r}.", hint=f"Use one of: {', '.join(PLACEHOLDERS)}.")
    if not isinstance(n, int) or n < 0:
        raise InvalidInput(f"the count for {kind} must be a non-negative int, got {n!r}.")


# --- the text's shape ----------------------------------------------------------------------------------------------
# A multi-character substring test costs about 1 ns a character, a single character (memchr) a tenth of that, and a
# regex that cannot start from a literal several times more. So detectors test a rare character first where there
# is one, and test case-insensitive needles and number shapes once on the shape: the text as ASCII bytes, one byte a
# character so offsets agree, letters lower-cased, every digit 0 and the separators numbers use (space, - and .) |.

_SHAPE_TABLE = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ123456789 -.", b"abcdefghijklmnopqrstuvwxyz000000000|||")


def _shape(text: str) -> bytes:
    return text.encode("ascii", "replace").translate(_SHAPE_TABLE)


def _spans(pattern: re.Pattern[str], text: str, kind: str, *, group: int = 0) -> list[Finding]:
    return [Finding(m.start(group), m.end(group), kind) for m in pattern.finditer(text)]


# --- secrets -------------------------------------------------------------------------------------------------------
# Patterns start with a literal and check their left boundary in a lookbehind *after* it: a leading lookbehind would
# make the regex engine try every position instead of jumping between occurrences of the literal.

_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_BODY = re.compile(r"(?:(?:\r?\n|\\n)[A-Za-z0-9+/=]{16,})*")  # base64 lines, as-is or JSON-escaped
# The password runs to the last `@` before the host: an unescaped `@` in it must not leave its tail behind.
_URL_USERINFO = re.compile(r"://(?<=[A-Za-z0-9]://)([^\s/?#@:\[\]]*:[^\s/?#\[\]]+)@(?=[A-Za-z0-9\[])")
_JWT = re.compile(r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_AWS_KEY_ID = re.compile(r"IA(?<=AKIA|ASIA)(?<![A-Za-z0-9]..IA)[A-Z0-9]{16}(?![A-Za-z0-9])")  # from the common "IA"
_AWS_SECRET_VALUE = r"[\"']?\s*(?:[:=]|\bis\b)\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
_AWS_SECRET = (  # `aws_secret_access_key`, `SecretAccessKey`, `secret access key`, `AWS_SECRET_KEY`; one per case
    re.compile(r"ecret(?<=[Ss]ecret)[_ .-]?(?:[Aa]ccess[_ .-]?)?[Kk]ey" + _AWS_SECRET_VALUE),
    re.compile(r"ECRET(?<=SECRET)[_ .-]?(?:ACCESS[_ .-]?)?KEY" + _AWS_SECRET_VALUE),
)
_SK_KEY = re.compile(r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9_-]{20,}")
_SLACK = re.compile(r"x(?<![A-Za-z0-9_-]x)(?:ox[abposr]|app)-[A-Za-z0-9-]{10,}")
_GITHUB = re.compile(r"g(?<![A-Za-z0-9_]g)(?:h[pousr]_[A-Za-z0-9]{20,}|ithub_pat_[A-Za-z0-9_]{20,})(?![A-Za-z0-9_])")
_BEARER = re.compile(r"(?:Bearer|bearer|BEARER)(?<![A-Za-z].{6})[ \t]+([A-Za-z0-9._~+/-]{12,}=*)")
_HAS_DIGIT = re.compile(r"[0-9]")


def _random_tail(token: str) -> bool:
    """Keys are random, so they hold a digit; hyphenated words (`sk-learn-style-wrapper`) do not."""
    return _HAS_DIGIT.search(token) is not None


def _find_private_keys(text: str, shape: bytes) -> list[Finding]:
    """From BEGIN to END; a key pasted without its END line ends with its last base64 line.

    END is looked for only up to the next BEGIN, so many unterminated BEGINs cost linear time, not quadratic.
    """
    if "-----BEGIN" not in text:
        return []
    found, pos = [], 0
    while (begin := _PEM_BEGIN.search(text, pos)) is not None:
        following = text.find("-----BEGIN", begin.end())
        end = _PEM_END.search(text, begin.end(), len(text) if following == -1 else following)
        if end is not None:
            pos = end.end()
        else:  # the body pattern also matches nothing, so there is always a match
            body = _PEM_BODY.match(text, begin.end())
            pos = body.end() if body is not None else begin.end()
        found.append(Finding(begin.start(), pos, "PRIVATE_KEY"))
    return found


def _find_url_credentials(text: str, shape: bytes) -> list[Finding]:
    """Only `user:pass`: the scheme and host stay, so a reader still knows which service it was."""
    if "@" not in text or "://" not in text:
        return []
    return _spans(_URL_USERINFO, text, "URL_CREDENTIALS", group=1)


def _find_jwts(text: str, shape: bytes) -> list[Finding]:
    return _spans(_JWT, text, "JWT") if "J" in text else []


def _find_aws_keys(text: str, shape: bytes) -> list[Finding]:
    """Key ids by prefix; secret keys only after a label, since 40 base64 characters alone could be anything."""
    found = [Finding(m.start() - 2, m.end(), "AWS_KEY") for m in _AWS_KEY_ID.finditer(text)] if "IA" in text else []
    if b"ecret" in shape:
        found += [f for pattern in _AWS_SECRET for f in _spans(pattern, text, "AWS_KEY", group=1)]
    return found


def _find_api_keys(text: str, shape: bytes) -> list[Finding]:
    """OpenAI (`sk-`, `sk-proj-`) and Anthropic (`sk-ant-`) keys share the `sk-` prefix."""
    if "sk-" not in text:
        return []
    return [Finding(m.start(), m.end(), "API_KEY") for m in _SK_KEY.finditer(text) if _random_tail(m.group()[3:])]


def _find_slack_tokens(text: str, shape: bytes) -> list[Finding]:
    if "x" not in text:
        return []
    return [Finding(m.start(), m.end(), "SLACK_TOKEN") for m in _SLACK.finditer(text) if _random_tail(m.group()[5:])]


def _find_github_tokens(text: str, shape: bytes) -> list[Finding]:
    return _spans(_GITHUB, text, "GITHUB_TOKEN") if "_" in text else []


def _find_bearer_tokens(text: str, shape: bytes) -> list[Finding]:
    """The token only, so `Authorization: Bearer [BEARER_TOKEN]` still reads as a header.

    Prose (`the bearer of this note`) has no digit after the word; tokens do.
    """
    if b"earer" not in shape:
        return []
    return [Finding(m.start(1), m.end(1), "BEARER_TOKEN") for m in _BEARER.finditer(text) if _random_tail(m.group(1))]


# --- email ---------------------------------------------------------------------------------------------------------
# Anchored on '@' (a literal, so fast); the local part is walked back from there instead of being matched forwards
# from every word start.

_AT_DOMAIN = re.compile(r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24}))(?![A-Za-z0-9-])")
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_FILE_SUFFIXES = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif", "tiff", "pdf"})


def _find_emails(text: str, shape: bytes) -> list[Finding]:
    if "@" not in text:
        return []
    found = []
    for m in _AT_DOMAIN.finditer(text):
        start = _local_part_start(text, m.start())
        if start is not None and _is_address(text, start, m):
            found.append(Finding(start, m.end(), "EMAIL"))
    return found


def _local_part_start(text: str, at: int) -> int | None:
    """Where the local part before `at` begins, or None when there is none (`@channel`) or it is implausibly long."""
    start = at
    while start > 0 and at - start <= 64 and text[start - 1] in _LOCAL_CHARS:
        start -= 1
    while start < at and text[start] == ".":
        start += 1
    return start if 0 < at - start <= 64 else None


def _is_address(text: str, start: int, m: re.Match[str]) -> bool:
    """Not an email: `logo@2x.png`, URL userinfo (`https://token@host`), scp remotes (`git@github.com:org/repo`)."""
    if m.group(2).lower() in _FILE_SUFFIXES or text.endswith("//", 0, start):
        return False
    end = m.end()
    return not (end + 1 < len(text) and text[end] == ":" and not text[end + 1].isspace())


# --- IPv6 (IPv4 is with the numbers) -------------------------------------------------------------------------------
# Every IPv6 address has `::` or seven colons; from each `::` or three colons in a row of hex groups, walk back to
# where the run of hex digits, colons and dots starts, and let `ipaddress` judge the run.

_IPV6_HINT = re.compile(r":(?::|[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:)")  # `::`, or three colons: never a time
_IPV6_RUN = re.compile(r"[0-9A-Fa-f:.]+")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_LONGEST_IPV6 = 45  # ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255


def _find_ipv6(text: str, shape: bytes) -> list[Finding]:
    if ":" not in text:
        return []
    found: list[Finding] = []
    done = 0
    for hint in _IPV6_HINT.finditer(text):
        if hint.start() < done:
            continue
        start, floor = hint.start(), max(0, hint.start() - _LONGEST_IPV6)
        while start > floor and text[start - 1] in _IPV6_CHARS:
            start -= 1
        run = _IPV6_RUN.match(text, start)
        if run is None:  # cannot happen: the run starts at the hint's own colon
            continue
        done = run.end()
        finding = _ipv6_in_run(text, *run.span())
        colon = text.find(":", start, done)
        if finding is None and text[colon + 1] != ":":  # `IPv6:fe80::1`: the run starts inside the word before
            finding = _ipv6_in_run(text, colon + 1, done)
        if finding is not None:
            found.append(finding)
    return found


def _ipv6_in_run(text: str, start: int, end: int) -> Finding | None:
    """The address in a run, without punctuation around it (`IPv6:fe80::1.`), if it stands alone and is valid."""
    while start < end and (text[start] == "." or (text[start] == ":" and text[start + 1 : start + 2] != ":")):
        start += 1
    while end > start and (text[end - 1] == "." or (text[end - 1] == ":" and text[end - 2 : end - 1] != ":")):
        end -= 1
    alone = not (_word_char_at(text, start - 1) or _word_char_at(text, end))
    return Finding(start, end, "IP_ADDRESS") if alone and _is_ipv6(text[start:end]) else None


def _word_char_at(text: str, i: int) -> bool:
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")


def _is_ipv6(candidate: str) -> bool:
    """`ipaddress` decides, after cheap checks: MACs and the like have neither `::` nor eight groups."""
    colons = candidate.count(":")
    if colons < 2 or colons > 7 or ("::" not in candidate and colons < 6) or _HAS_DIGIT.search(candidate) is None:
        return False  # `dead::beef` has no digit: a word game, not an address
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


# --- numbers: cards, SSNs, IBANs, phones, IPv4 ---------------------------------------------------------------------
# Every number these detectors accept holds a hint, at most _BEFORE_HINT characters from its start: in the shape,
# eight digits in a row, a digit, a separator and four digits (`555-2671`, `1111 1111`), or the French `0|00|00|00|0`;
# in the text, `.digits.digits.digit` or `+digit`. Dates, prices, times and versions, which nearly every text has,
# hold none, so the number patterns only run in short windows around hints.

_NUMBER_NEEDLES = (b"00000000", b"0|0000", b"0|00|00|00|0")
_IPV4_HINT = re.compile(r"\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]")  # on the text: in the shape, dots are separators too
_PLUS_DIGIT = re.compile(r"\+[0-9]")
_BEFORE_HINT = 24  # an IBAN's letters come first (`RO49 AAAA 1B31 0075`): its hint is 13 characters in
_LONGEST_NUMBER = 32  # a card in groups: 4 + 6 + 3 * 7 characters
_LONGEST_IBAN = 42  # 34 characters in groups of four

# One alternative a type. The first character is matched before the alternatives (each of which then looks behind to
# see what it was), so the regex engine can skip to the next digit, + or ( instead of trying every position. An empty
# named group closes each alternative, so `lastgroup` names the one that matched.
_NUMBER = re.compile(
    r"""
    [0-9+(]
    (?<![A-Za-z0-9_#.-].)                       # not the tail of a word or an id like ORD-4111...
    (?:
        (?<=\+)[0-9][0-9 ().-]{6,22}[0-9](?P<INTL>)
      | (?<![0-9][ ].)                          # not the tail of a longer space-separated number
        (?:
            (?<=[0-9])(?:[0-9]{12,18}|[0-9]{3}(?P<cs>[ -])[0-9]{4,6}(?:(?P=cs)[0-9]{3,6}){1,3})(?P<CARD>)
          | (?<=[0-9])[0-9]{8}(?P<BARE9>)
          | (?<=[0-9])[0-9]{2}(?P<ss>[ -])[0-9]{2}(?P=ss)[0-9]{4}(?P<SSN>)
          | (?<=[0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?P<IPV4>)
          | (?:(?<=1)[ .-](?:\([0-9]{3}\)[ ]?|[0-9]{3}[ .-])|(?<=\()[0-9]{3}\)[ ]?|(?<=[0-9])[0-9]{2}[ .-])
            [0-9]{3}[ .-][0-9]{4}(?P<NANP>)
          | (?<=0)(?:[0-9]{2,4}(?P<n1>[ .-])[0-9]{3,4}(?P=n1)[0-9]{4}|[0-9]{3,4}[ ][0-9]{6}
                     |[0-9](?P<n2>[ .])[0-9]{2}(?:(?P=n2)[0-9]{2}){3})(?P<NATIONAL>)
        )
    )
    (?![A-Za-z0-9_])(?![.-][0-9])
    """,
    re.X,
)
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9_][A-Z])[A-Z][0-9]{2}(?:[ ]?[A-Z0-9]){11,32}+")
_ID_CONTEXT = re.compile(
    r"(?i)\b(?:order|tracking|invoice|ticket|shipment|parcel|ref|reference|confirmation|booking|case|sku|id"
    r"|ean|gtin|upc|barcode)\W{0,4}(?:(?:no|num|number|id)\W{0,4})?$"
)
_NOT_AN_ADDRESS_CONTEXT = re.compile(
    r"(?i)(?:\b(?:version|ver|release|build|firmware|section|chapter|clause|step)|§)\W{0,3}$"
)
_SSN_LABEL = re.compile(r"(?i)(?:\bssn|social security(?: number| no\.?)?)\W{0,3}(?:is\W{1,3})?$")
_PHONE_DOUBLE_SEPARATOR = re.compile(r"[ .-][ .-]")
_PHONE_GROUPS = re.compile(r"[ .()-]+")

# ISO 13616 IBAN lengths by country.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def _find_numbers(text: str, shape: bytes) -> list[Finding]:
    """Cards, SSNs, IBANs, phones and IPv4 addresses, searched for only near their hints."""
    return _numbers_in(text, _number_windows(text, shape))


def _number_windows(text: str, shape: bytes) -> list[tuple[int, int]]:
    """(from, until) stretches where a number may start: from _BEFORE_HINT before a hint to the hint's end.

    A number holds a hint, or overlaps an earlier occurrence of the same needle that hid it, so it starts in one of
    these. Windows whose searches would overlap are merged, so nothing is found twice.
    """
    windows: list[tuple[int, int]] = []
    for start, end in _number_hints(text, shape):
        low = max(0, start - _BEFORE_HINT)
        if windows and low <= windows[-1][1] + _LONGEST_NUMBER + 2:
            windows[-1] = (windows[-1][0], max(end, windows[-1][1]))
        else:
            windows.append((low, end))
    return windows


def _number_hints(text: str, shape: bytes) -> list[tuple[int, int]]:
    """Spans of every hint, in order; each needle is a plain substring search, the cheapest scan there is."""
    hints = []
    for needle in _NUMBER_NEEDLES:
        at = shape.find(needle)
        while at != -1:
            hints.append((at, at + len(needle)))
            at = shape.find(needle, at + len(needle))
    if "." in text:
        hints += [m.span() for m in _IPV4_HINT.finditer(text)]
    if "+" in text:
        hints += [m.span() for m in _PLUS_DIGIT.finditer(text)]
    return sorted(hints)


def _numbers_in(text: str, windows: list[tuple[int, int]]) -> list[Finding]:
    """IBANs first, then the numbers not inside one (an IBAN's account digits can pass for a card)."""
    ibans = [i for low, until in windows for i in _ibans_in(text, low, until)]
    numbers = [n for low, until in windows for n in _candidates_in(text, low, until)]
    if ibans:
        numbers = [n for n in numbers if not any(i.start < n.end and n.start < i.end for i in ibans)]
        return sorted(ibans + numbers)
    return numbers


def _candidates_in(text: str, low: int, until: int) -> list[Finding]:
    found = []
    for m in _NUMBER.finditer(text, low, min(len(text), until + _LONGEST_NUMBER + 2)):  # +2: the lookaheads
        if m.start() >= until:
            break
        finding = _number_finding(text, m)
        if finding is not None:
            found.append(finding)
    return found


def _ibans_in(text: str, low: int, until: int) -> list[Finding]:
    found: list[Finding] = []
    stop = min(len(text), until + _LONGEST_IBAN)
    m = _IBAN.search(text, low, stop)  # most windows have none: one search is cheaper than an iterator
    while m is not None and m.start() < until:
        end = _iban_end(text, m)
        if end is not None:
            found.append(Finding(m.start(), end, "IBAN"))
        m = _IBAN.search(text, m.end(), stop)
    return found


def _iban_end(text: str, m: re.Match[str]) -> int | None:
    """The candidate is greedy (it may run into the next word), so cut it at the country's length and check there."""
    length = _IBAN_LENGTHS.get(m.group()[:2])
    compact = m.group().replace(" ", "")
    if length is None or len(compact) < length or not _mod97_ok(compact[:length]):
        return None
    end, seen = m.start(), 0
    while seen < length:
        seen += text[end] != " "
        end += 1
    return None if _word_char_at(text, end) else end


def _mod97_ok(iban: str) -> bool:
    """ISO 7064 mod 97-10: move the first four characters to the end, letters become 10..35, the number mod 97 is 1."""
    digits = "".join(str(int(c, 36)) for c in iban[4:] + iban[:4])
    return int(digits) % 97 == 1


def _number_finding(text: str, m: re.Match[str]) -> Finding | None:
    """The candidate as a finding once its check digits and context agree; None for an id that only looks like one."""
    if m.lastgroup is None:  # every alternative of the pattern is a named group
        return None
    kind, check = _NUMBER_KINDS[m.lastgroup]
    value = _trim_phone(m.group()) if m.lastgroup == "INTL" else m.group()
    return Finding(m.start(), m.start() + len(value), kind) if check(text, m.start(), value) else None


def _is_card(text: str, start: int, value: str) -> bool:
    """Card networks issue numbers starting 2-6 (so ISBNs, 978..., and epoch millis, 17..., are out); Luhn must pass.

    A bare digit run is read as an id when it follows `order #` or `tracking no.`, and 13 bare digits with a valid
    EAN-13 check digit as a product barcode: 13-digit cards are long gone, barcodes are on every order.
    """
    digits = value.replace(" ", "").replace("-", "")
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456" or not _luhn_ok(digits):
        return False
    if digits != value:
        return True
    return not (_ID_CONTEXT.search(text, max(0, start - 32), start) or (len(digits) == 13 and _ean13_ok(digits)))


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _ean13_ok(digits: str) -> bool:
    return sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(digits)) % 10 == 0


def _is_ssn(text: str, start: int, value: str) -> bool:
    """The SSA never issues area 000, 666 or 900-999, group 00 or serial 0000."""
    digits = value.replace("-", "").replace(" ", "")
    area, group, serial = int(digits[:3]), int(digits[3:5]), int(digits[5:])
    return area not in (0, 666) and area < 900 and group != 0 and serial != 0


def _is_labelled_ssn(text: str, start: int, value: str) -> bool:
    """Nine bare digits are an SSN only right after `SSN` or `social security number`."""
    return _SSN_LABEL.search(text, max(0, start - 32), start) is not None and _is_ssn(text, start, value)


def _is_ipv4(text: str, start: int, value: str) -> bool:
    """Valid octets, and not a four-part version or section number (`version 10.2.0.1`, `section 2.1.4.3`)."""
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return _NOT_AN_ADDRESS_CONTEXT.search(text, max(0, start - 12), start) is None


def _trim_phone(value: str) -> str:
    """A trailing ` 2` is the next word's number (`+1 415 555 2671 2 times`), not part of the phone."""
    return value[:-2] if value[-2] == " " else value


def _is_international_phone(text: str, start: int, value: str) -> bool:
    """E.164 allows 15 digits at most; real formats use one separator at a time and at most one paren group."""
    digits = sum(c.isdigit() for c in value)
    if not 8 <= digits <= 15 or _PHONE_DOUBLE_SEPARATOR.search(value):
        return False
    if "." in value and ("(" in value or not _dots_after_country_code(value)):
        return False
    if value.count("(") != value.count(")") or value.count("(") > 1:
        return False
    groups = _PHONE_GROUPS.split(value[1:])
    return sum(len(g) == 1 for g in groups[1:]) <= 2  # `+353 (0)1 234 5678` has two; `+2 3 4 5 6 7 8 9` is a list


def _dots_after_country_code(value: str) -> bool:
    """`+1 415.555.2671` is a phone, `+12.5 14.2 15.6` a list of figures: a space may only follow the country code."""
    parts = value[1:].split(" ")
    return len(parts) == 1 or (len(parts) == 2 and parts[0].isdigit() and len(parts[0]) <= 3)


def _is_nanp(text: str, start: int, value: str) -> bool:
    """North American area codes and exchanges never start with 0 or 1 (`123-456-7890` is a placeholder)."""
    digits = "".join(c for c in value if c.isdigit())[-10:]
    return digits[0] not in "01" and digits[3] not in "01"


def _is_national_phone(text: str, start: int, value: str) -> bool:
    """The pattern alone fixes the shape (`020 7946 0958`, `01 23 45 67 89`), and no date or price has it."""
    return True


_NUMBER_KINDS: dict[str, tuple[str, Callable[[str, int, str], bool]]] = {
    "CARD": ("CARD", _is_card),
    "BARE9": ("SSN", _is_labelled_ssn),
    "SSN": ("SSN", _is_ssn),
    "IPV4": ("IP_ADDRESS", _is_ipv4),
    "INTL": ("PHONE", _is_international_phone),
    "NANP": ("PHONE", _is_nanp),
    "NATIONAL": ("PHONE", _is_national_phone),
}

# Priority order: when findings overlap, the earlier detector's wins.
_DETECTORS: tuple[Callable[[str, bytes], list[Finding]], ...] = (
    _find_private_keys,
    _find_url_credentials,
    _find_jwts,
    _find_aws_keys,
    _find_api_keys,
    _find_slack_tokens,
    _find_github_tokens,
    _find_bearer_tokens,
    _find_emails,
    _find_ipv6,
    _find_numbers,
)


# --- presidio (optional) -------------------------------------------------------------------------------------------

_PRESIDIO_ENTITIES = {"PERSON": "PERSON", "LOCATION": "LOCATION"}
_PLACEHOLDER_TEXT = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS.values()))


def presidio_installed() -> bool:
    """Whether `presidio_analyzer` can be imported, without importing it (that loads a language model)."""
    return importlib.util.find_spec("presidio_analyzer") is not None


@functools.cache
def _presidio_engine() -> Any:  # presidio_analyzer is an optional extra without type information
    """One analyzer per process: building it loads spaCy, which takes seconds."""
    from presidio_analyzer import AnalyzerEngine

    return AnalyzerEngine()


def _find_names_and_places(text: str) -> list[Finding]:
    results = _presidio_engine().analyze(text=text, language="en", entities=list(_PRESIDIO_ENTITIES))
    taken = [m.span() for m in _PLACEHOLDER_TEXT.finditer(text)]  # `[PERSON]` itself is not a name
    return [
        Finding(r.start, r.end, _PRESIDIO_ENTITIES[r.entity_type])
        for r in results
        if r.entity_type in _PRESIDIO_ENTITIES and not any(s < r.end and r.start < e for s, e in taken)
    ]


# --- the face ------------------------------------------------------------------------------------------------------


class Redactor:
    """Finds and replaces PII and secrets. Cheap to build; pickles as its settings, so a worker process rebuilds it."""

    def __init__(self, *, use_presidio: bool | None = None) -> None:
        if use_presidio not in (None, True, False):
            raise InvalidInput(f"`use_presidio` must be True, False or None, got {use_presidio!r}.")
        installed = use_presidio is not False and presidio_installed()
        if use_presidio and not installed:
            raise InvalidInput(
                "use_presidio=True needs presidio_analyzer, which is not installed.", hint=_PRESIDIO_HINT
            )
        self.use_presidio = use_presidio
        self.runs_presidio = installed if use_presidio is None else use_presidio

    def __reduce__(self) -> tuple[Callable[[bool | None], Redactor], tuple[bool | None]]:
        return (_build_redactor, (self.use_presidio,))

    def __repr__(self) -> str:
        return f"Redactor(use_presidio={self.use_presidio!r})"

    def find(self, text: str) -> list[Finding]:
        """What would be redacted, as spans of `text` in order; for reviewers and for measuring the detectors."""
        if not isinstance(text, str):
            raise InvalidInput(f"`text` must be a str, got {type(text).__name__}.")
        shape = _shape(text)
        batches = [found for detect in _DETECTORS if (found := detect(text, shape))]
        if self.runs_presidio and (names := _find_names_and_places(text)):
            batches.append(names)
        return _resolve(batches)

    def redact(self, text: str) -> RedactionResult:
        """`text` with each finding replaced by its placeholder, and how many of each type were replaced."""
        return _splice(text, self.find(text))


def _build_redactor(use_presidio: bool | None) -> Redactor:
    return Redactor(use_presidio=use_presidio)


def _resolve(batches: list[list[Finding]]) -> list[Finding]:
    """Findings sorted by start, each kept only if it overlaps none kept before it (earlier batches win).

    Overlaps happen within a batch too: a detector may run two patterns, and `a@b.com@c.com` holds two addresses.
    """
    if len(batches) == 1 and len(batches[0]) == 1:
        return batches[0]
    kept: list[Finding] = []
    for batch in batches:
        for f in batch:
            i = bisect.bisect_left(kept, f)
            if (i == 0 or kept[i - 1].end <= f.start) and (i == len(kept) or f.end <= kept[i].start):
                kept.insert(i, f)
    return kept


def _splice(text: str, findings: list[Finding]) -> RedactionResult:
    parts: list[str] = []
    counts: dict[str, int] = {}
    last = 0
    for f in findings:
        parts += (text[last : f.start], PLACEHOLDERS[f.kind])
        counts[f.kind] = counts.get(f.kind, 0) + 1
        last = f.end
    parts.append(text[last:])
    return RedactionResult("".join(parts), counts)


@functools.cache
def _default_redactor() -> Redactor:
    return Redactor()


@overload
def redact_into(redactor: Redactor, text: str, counts: dict[str, int]) -> str: ...
@overload
def redact_into(redactor: Redactor, text: None, counts: dict[str, int]) -> None: ...
@overload
def redact_into(redactor: Redactor, text: str | None, counts: dict[str, int]) -> str | None: ...
def redact_into(redactor: Redactor, text: str | None, counts: dict[str, int]) -> str | None:
    """Redact `text`, adding what was found to `counts`; None and empty text pass through."""
    if not text:
        return text
    result = redactor.redact(text)
    for kind, n in result.counts.items():
        counts[kind] = counts.get(kind, 0) + n
    return result.text


def redact(text: str) -> RedactionResult:
    """Redact with the default Redactor: regex detectors, plus presidio when it is installed."""
    return _default_redactor().redact(text)

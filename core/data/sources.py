"""Reading feedback files: JSONL lines or CSV rows, each with its line number, whatever the bytes hold.

The encoding is read from the file's first bytes: a byte order mark (UTF-8,
UTF-16 or UTF-32), or, without one, the zero bytes that UTF-16 and UTF-32 put
beside every ASCII character (a JSONL line starts with `{`, a CSV header with a
name); anything else is read as UTF-8. A line that cannot be read (bytes that
are not valid in the file's encoding, JSON that does not parse, a number too
long to convert, nesting too deep to follow, a line longer than
`MAX_LINE_BYTES`) becomes a `LineError` naming the line and the fix; reading
goes on with the next line. Only a CSV file that the csv module cannot read on
past some line (a cell over its field size limit, usually an unclosed quote) is
refused as a whole, because the lines after it cannot be told apart.

JSONL lines are handed on as UTF-8 bytes (other encodings are transcoded while
reading) and parsed by `decode_json_line` in the worker processes.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

from pydantic import BaseModel

from core.errors import InvalidInput
from core.platform.text import lone_surrogate

MAX_LINE_BYTES = 16 * 2**20
"""The longest JSONL line read; a longer one is refused (texts are bounded well below it)."""
_SKIP_BLOCK = 2**20
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_FORMATS = ("jsonl", "csv")


def _mark_undecodable(error: UnicodeError) -> tuple[str, int]:
    """Decode each unreadable byte as a lone surrogate (like 'surrogateescape', but for any codec, UTF-16 too)."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "".join(chr(0xDC00 + byte) for byte in error.object[error.start : error.end]), error.end


UNDECODABLE = "finetune-undecodable"
codecs.register_error(UNDECODABLE, _mark_undecodable)


class LineError(BaseModel):
    """Why one event (a line, a CSV record, a batch item) was not stored."""

    line: int
    field: str | None
    message: str
    hint: str


class _Blank:
    """A line holding nothing but white space: skipped, and not counted as an event."""


BLANK: Final = _Blank()


def read_events(path: Path, *, fmt: str | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, raw event) pairs of a JSONL or CSV file (`fmt`, default from the file's extension)."""
    fmt = fmt or {".csv": "csv"}.get(path.suffix.lower(), "jsonl")
    if fmt not in _FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}.", hint="Use --format jsonl or --format csv.")
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}.", hint="Check the path.")
    encoding = detect_encoding(path)
    return read_csv(path, encoding) if fmt == "csv" else read_jsonl(path, encoding)


def detect_encoding(path: Path) -> str:
    """The encoding the file's first bytes show (a BOM, or the zero bytes of UTF-16/32 text); UTF-8 otherwise."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    if len(head) == 4 and head[0] and head[1:] == b"\0\0\0":
        return "utf-32-le"
    if len(head) == 4 and head[:3] == b"\0\0\0" and head[3]:
        return "utf-32-be"
    if len(head) >= 4 and head[0] and not head[1] and head[2] and not head[3]:
        return "utf-16-le"
    if len(head) >= 4 and not head[0] and head[1] and not head[2] and head[3]:
        return "utf-16-be"
    return "utf-8"


def _label(encoding: str) -> str:
    return encoding.upper().removesuffix("-SIG").removesuffix("-LE").removesuffix("-BE")


# JSONL ----------------------------------------------------------------------------------------------


def read_jsonl(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, bytes | LineError]]:
    """(line number, the line as UTF-8 bytes) per line, or a LineError for a line that cannot be read."""
    binary = encoding in ("utf-8", "utf-8-sig")  # decoded in the workers, where the time goes
    with open(path, "rb") if binary else open(path, encoding=encoding, errors=UNDECODABLE, newline=None) as handle:
        for number, line in _bounded_lines(handle):
            if not isinstance(line, str):
                yield number, line
            elif _undecodable(line):
                yield number, _unreadable(number, f"the line is not valid {_label(encoding)}.",
                                          f"Save the file as UTF-8 (it was read as {_label(encoding)}).")  # fmt: skip
            else:
                yield number, line.encode("utf-8")


def _bounded_lines(handle: IO[bytes] | IO[str]) -> Iterator[tuple[int, bytes | str | LineError]]:
    number = 0
    while line := handle.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES:
            _skip_rest_of_line(handle, line)
            yield number, LineError(
                line=number, field=None, message=f"the line is longer than {MAX_LINE_BYTES:,} bytes.",
                hint=f"Split the event's texts: a line holds at most {MAX_LINE_BYTES // 2**20} MiB.",
            )  # fmt: skip
            continue
        yield number, line


def _skip_rest_of_line(handle: IO[bytes] | IO[str], line: bytes | str) -> None:
    while line[-1:] not in (b"\n", "\n"):
        line = handle.readline(_SKIP_BLOCK)
        if not line:
            return


def decode_json_line(raw: bytes, number: int) -> Any:
    """One JSONL line as its JSON value, BLANK for an empty line, or a LineError saying why it cannot be read."""
    if number == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")
    raw = raw.strip()
    if not raw:
        return BLANK
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        return _unreadable(number, f"the line is not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at byte "
                                   f"{exc.start + 1}).", "Save the file as UTF-8.")  # fmt: skip
    except json.JSONDecodeError as exc:
        return _unreadable(number, f"not valid JSON ({exc.msg} at column {exc.colno}).",
                           "Each line must be one complete JSON object.")  # fmt: skip
    except RecursionError:
        return _unreadable(number, "the JSON is nested too deeply to read.",
                           "Flatten the event: it may nest objects and lists a few dozen levels at most.")  # fmt: skip
    except ValueError as exc:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        reason = str(exc).split(":")[0]
        return _unreadable(number, f"a number on the line is too long to read ({reason}).",
                           "Give very long numbers as strings.")  # fmt: skip


def _unreadable(number: int, message: str, hint: str) -> LineError:
    return LineError(line=number, field=None, message=message, hint=hint)


# CSV ------------------------------------------------------------------------------------------------


def read_csv(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, Any]]:
    """(line number, row dict) per CSV record; the header is line 1. JSON-looking cells are parsed."""
    if encoding == "utf-8":
        encoding = "utf-8-sig"
    with open(path, newline="", encoding=encoding, errors=UNDECODABLE) as handle:
        reader = csv.DictReader(handle)
        rows = iter(reader)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                line = reader.reader.line_num  # the DictReader's own count stops at the last good record
                raise InvalidInput(
                    f"cannot read {path} past line {line}: {exc}.",
                    hint=f"A CSV cell holds at most {csv.field_size_limit():,} characters: look for an unclosed "
                    "quote there, or give long texts in a JSONL file.",
                    line=line,
                ) from None
            if (item := _csv_record(reader.line_num, row, encoding)) is not None:
                yield item


def _csv_record(number: int, row: dict[Any, Any], encoding: str) -> tuple[int, Any] | None:
    cells = [cell for value in row.values() for cell in (value if isinstance(value, list) else [value])]
    if not any(cell.strip() for cell in cells if isinstance(cell, str)):
        return None
    if None in row:
        return number, _unreadable(number, "the row has more cells than the header has columns.",
                                   "Quote cells that contain commas.")  # fmt: skip
    if any(_undecodable(text) for pair in row.items() for text in pair if isinstance(text, str)):
        return number, _unreadable(number, f"the row (or the header) is not valid {_label(encoding)}.",
                                   f"Save the file as UTF-8 (it was read as {_label(encoding)}).")  # fmt: skip
    return number, {k: _csv_cell(k, v) for k, v in row.items() if v not in (None, "")}


def _undecodable(text: str) -> bool:
    """Whether decoding left bytes it could not read (as lone surrogates, see `_mark_undecodable`)."""
    return lone_surrogate(text) is not None


def _csv_cell(name: str, value: str) -> Any:
    stripped = value.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):
            return value  # not JSON after all: the field's own check says what is wrong
    if name == "tags" or name.endswith("tags"):
        return [t.strip() for t in stripped.split(",") if t.strip()]
    return value

"""Bulk import: report files (JSON Lines or CSV) to submissions, and streaming them to a node.

Parsing is a generator of ``(line number, Submission | error message)``: a bad record becomes a
message naming its line and field and the import goes on; only a problem with the file as a whole
(unknown CSV column, undecodable CSV structure) raises ``ImportFileError``. Records are validated
with the domain constructors (``parse_hash_text``, ``make_item``, ``check_items``, ``make_facts``),
so a file is held to exactly the rules of every other entry point. The URL is left to the node,
which canonicalises it; its refusals come back per record with the line number as ``client_ref``.

``run_import`` feeds the good records through ``IntakeClient.submit_many`` (one gRPC stream, in
order) and yields one event per record on the caller's thread. gRPC consumes the request
iterator on its own thread, so parse errors met there are queued and handed over between
responses, and an exception there is carried over and re-raised rather than lost.

Formats. JSON Lines, one report per line::

    {"url": "https://…", "site_type": "website", "commercial": false, "payment_methods": [],
     "notes": "", "items": [{"hashes": ["sha256:…"], "classification": "baseline",
     "media_type": "image", "age_group": "unknown"}]}

CSV with a header row (``url``, ``classification`` and ``hashes`` required; ``hashes`` separated
by ``;``); one row is one report with one item; the delimiter (comma, semicolon or tab) is
detected on the header line::

    url,classification,hashes,media_type,age_group,site_type,commercial,notes

Blank lines are skipped and counted. The full format is documented in docs/cli.md.

Both formats take the reporter's coarse region with the reporter's consent: ``reporter_region``
(ISO 3166-2, e.g. ``NL-NH``) and ``region_consent`` (true). A region without consent is a bad
record, as the node would refuse it; the region stays at the node (its own statistics only).
"""

from __future__ import annotations

import codecs
import collections
import csv
import io
import itertools
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any, Literal, TypeVar

from auth import strict_json
from auth.strict_json import StrictJsonError
from exchange.domain import (
    AgeGroup,
    Classification,
    Item,
    MediaType,
    SiteType,
    Submission,
    check_items,
    make_facts,
    make_item,
    parse_hash_text,
    parse_region,
)
from exchange.errors import ExchangeError, InvalidReport
from ihx.v1 import intake_pb2 as ipb

ImportFormat = Literal["jsonl", "csv"]
ParsedLine = tuple[int, Submission | str]
BlankCallback = Callable[[int], None] | None

# One report is a few KiB at most (notes ≤ 2,000 characters, ≤ 256 items); a much longer line is
# a wrong file, and refusing it keeps memory bounded.
MAX_LINE_BYTES = 1024 * 1024

REPORT_FIELDS = (
    "url",
    "site_type",
    "commercial",
    "payment_methods",
    "notes",
    "items",
    "reporter_region",
    "region_consent",
)
ITEM_FIELDS = ("hashes", "classification", "media_type", "age_group")
CSV_REQUIRED = ("url", "classification", "hashes")
CSV_COLUMNS = (
    "url",
    "classification",
    "hashes",
    "media_type",
    "age_group",
    "site_type",
    "commercial",
    "notes",
    "payment_methods",
    "reporter_region",
    "region_consent",
)


class ImportFileError(ExchangeError):
    """The file as a whole cannot be imported (not one bad record: those are skipped)."""

    code = "import-file"


def detect_format(name: str) -> ImportFormat:
    return "csv" if name.lower().endswith(".csv") else "jsonl"


# -- one record --------------------------------------------------------------------------------

E = TypeVar("E", bound=StrEnum)


def _enum(kind: type[E], value: object, where: str, default: E | None = None) -> E:
    if value is None and default is not None:
        return default
    if isinstance(value, str):
        text = value.strip().lower()
        if not text and default is not None:
            return default
        for member in kind:
            if member.value == text:
                return member
    allowed = ", ".join(m.value for m in kind)
    shown = json.dumps(value)[:40] if not isinstance(value, str) else repr(value[:40])
    raise InvalidReport(f"{where}: {shown} is not one of {allowed}", code="import-enum")


def _type_error(where: str, expected: str, value: object) -> InvalidReport:
    return InvalidReport(
        f"{where}: expected {expected}, got {_json_type(value)}", code="import-type"
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _check_fields(obj: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for name in obj:
        if name not in known:
            # A typo ("classfication") silently falling back to a default would misreport.
            raise InvalidReport(
                f"{where}{name}: unknown field (known: {', '.join(known)})", code="import-field"
            )


def _string_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list):
        raise _type_error(where, "an array of strings", value)
    for i, v in enumerate(value):
        if not isinstance(v, str):
            raise _type_error(f"{where}[{i}]", "a string", v)
    return list(value)


def _item_from_object(obj: object, where: str) -> Item:
    if not isinstance(obj, dict):
        raise _type_error(where, "an object", obj)
    _check_fields(obj, ITEM_FIELDS, f"{where}.")
    if "classification" not in obj:
        raise InvalidReport(f"{where}.classification: required", code="import-missing")
    hashes = _string_list(obj.get("hashes", []), f"{where}.hashes")
    return make_item(
        [parse_hash_text(h, where=f"{where}.hashes[{j}]") for j, h in enumerate(hashes)],
        _enum(Classification, obj["classification"], f"{where}.classification"),
        _enum(MediaType, obj.get("media_type"), f"{where}.media_type", MediaType.IMAGE),
        _enum(AgeGroup, obj.get("age_group"), f"{where}.age_group", AgeGroup.UNKNOWN),
        where=where,
    )


def submission_from_object(obj: object, *, client_ref: str = "") -> Submission:
    """A submission from its JSON object form (a JSON Lines record, ``ihx submit --from-json``)."""
    if not isinstance(obj, dict):
        raise _type_error("report", "a JSON object", obj)
    _check_fields(obj, REPORT_FIELDS, "")
    url = obj.get("url")
    if not isinstance(url, str) or not url.strip():
        raise InvalidReport("url: required (a non-empty string)", code="url-empty")
    commercial = obj.get("commercial", False)
    if not isinstance(commercial, bool):
        raise _type_error("commercial", "true or false", commercial)
    notes = obj.get("notes", "")
    if not isinstance(notes, str):
        raise _type_error("notes", "a string", notes)
    items_value = obj.get("items")
    if not isinstance(items_value, list):
        raise _type_error("items", "an array of items", items_value)
    items = check_items([_item_from_object(v, f"items[{i}]") for i, v in enumerate(items_value)])
    facts = make_facts(
        _enum(SiteType, obj.get("site_type"), "site_type", SiteType.WEBSITE),
        commercial,
        _string_list(obj.get("payment_methods", []), "payment_methods"),
        notes,
    )
    return Submission(url, facts, items, client_ref, _region_of_object(obj))


def _region_of_object(obj: Mapping[str, Any]) -> str | None:
    region = obj.get("reporter_region", "")
    if not isinstance(region, str):
        raise _type_error("reporter_region", "a string", region)
    consent = obj.get("region_consent", False)
    if not isinstance(consent, bool):
        raise _type_error("region_consent", "true or false", consent)
    return parse_region(region.strip(), consent)


# -- JSON Lines --------------------------------------------------------------------------------


def loads_record(text: str) -> object:
    """``json.loads`` refusing duplicate keys and NaN/Infinity; raises ``InvalidReport``."""
    try:
        return strict_json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidReport(
            f"not valid JSON at column {error.colno}: {error.msg}", code="import-json"
        ) from None
    except StrictJsonError as error:
        # A record must mean one thing: JSON parsers disagree on which duplicate wins.
        reason = (
            f"duplicate key {error.name[:40]!r}"
            if error.problem == "duplicate"
            else f"{error.name} is not valid JSON"
        )
        raise InvalidReport(f"not valid JSON: {reason}", code="import-json") from None
    except RecursionError:
        raise InvalidReport("not valid JSON: nested too deeply", code="import-json") from None


def iter_jsonl(stream: IO[bytes], *, on_blank: BlankCallback = None) -> Iterator[ParsedLine]:
    for line_no, raw in enumerate(stream, 1):
        if len(raw) > MAX_LINE_BYTES:
            yield line_no, f"line is longer than {MAX_LINE_BYTES} bytes"
            continue
        data = (
            raw[len(codecs.BOM_UTF8) :] if line_no == 1 and raw.startswith(codecs.BOM_UTF8) else raw
        )
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            yield line_no, f"not UTF-8 (byte {error.start + 1})"
            continue
        if not text:
            if on_blank is not None:
                on_blank(line_no)
            continue
        try:
            yield line_no, submission_from_object(loads_record(text), client_ref=str(line_no))
        except ExchangeError as error:
            yield line_no, error.message


# -- CSV ---------------------------------------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "y"})
_FALSE = frozenset({"", "0", "false", "no", "n"})


def _csv_bool(text: str, where: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidReport(f"{where}: {text[:20]!r} is not true or false", code="import-bool")


def _submission_from_row(row: Mapping[str, str], client_ref: str) -> Submission:
    for name, value in row.items():
        if any("\udc80" <= ch <= "\udcff" for ch in value):
            raise InvalidReport(f"{name}: not UTF-8 text", code="import-encoding")
    hashes = [h.strip() for h in row.get("hashes", "").split(";") if h.strip()]
    item = make_item(
        [parse_hash_text(h, where=f"hashes[{j}]") for j, h in enumerate(hashes)],
        _enum(Classification, row.get("classification", ""), "classification"),
        _enum(MediaType, row.get("media_type"), "media_type", MediaType.IMAGE),
        _enum(AgeGroup, row.get("age_group"), "age_group", AgeGroup.UNKNOWN),
        where="item",
    )
    methods = [m.strip() for m in row.get("payment_methods", "").split(";") if m.strip()]
    facts = make_facts(
        _enum(SiteType, row.get("site_type"), "site_type", SiteType.WEBSITE),
        _csv_bool(row.get("commercial", ""), "commercial"),
        methods,
        row.get("notes", ""),
    )
    url = row.get("url", "").strip()
    if not url:
        raise InvalidReport("url: required", code="url-empty")
    region = parse_region(
        row.get("reporter_region", "").strip(),
        _csv_bool(row.get("region_consent", ""), "region_consent"),
    )
    return Submission(url, facts, check_items([item]), client_ref, region)


CSV_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


def sniff_delimiter(header: str) -> str:
    """The delimiter of a header line: comma, semicolon (most European spreadsheet programs)
    or tab — the one that splits the header into the most known column names.

    Not ``csv.Sniffer``: on a single line it breaks ties by a fixed preference and answers
    ``,`` for ``url;classification;hashes;notes,x``; here the column names are known, so the
    header itself says which split is right."""

    def known(delimiter: str) -> int:
        try:
            names = next(csv.reader([header], delimiter=delimiter), [])
        except csv.Error:
            return 0
        return sum(name.strip().lower() in CSV_COLUMNS for name in names)

    best = max(CSV_DELIMITERS, key=known)
    if known(best) < 2:
        raise ImportFileError(
            "line 1: cannot tell the delimiter (comma, semicolon or tab) from the header: "
            "use --delimiter"
        )
    return best


def iter_csv(
    stream: IO[bytes], *, delimiter: str | None = None, on_blank: BlankCallback = None
) -> Iterator[ParsedLine]:
    """Validate the header now (a bad header fails the whole file), then parse rows lazily.

    ``delimiter`` None: detected on the header line (``sniff_delimiter``). A UTF-8 BOM, as
    spreadsheet programs write, is skipped."""
    # surrogateescape: an undecodable byte spoils its own row only, reported with the row.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    first = text.readline()
    if not first.strip():
        raise ImportFileError("the file is empty: a CSV import needs a header row")
    chosen = delimiter if delimiter is not None else sniff_delimiter(first)
    reader = csv.reader(itertools.chain([first], text), delimiter=chosen, strict=True)
    try:
        header = next(reader)
    except csv.Error as error:
        raise ImportFileError(f"line 1: not valid CSV: {error}") from None
    columns = [h.strip().lower() for h in header]
    for name in columns:
        if name not in CSV_COLUMNS:
            raise ImportFileError(
                f"line 1: unknown column {name[:40]!r} with delimiter "
                f"{CSV_DELIMITERS.get(chosen, repr(chosen))} (known: {', '.join(CSV_COLUMNS)})"
            )
    if len(set(columns)) != len(columns):
        raise ImportFileError("line 1: a column appears twice in the header")
    missing = [c for c in CSV_REQUIRED if c not in columns]
    if missing:
        raise ImportFileError(f"line 1: required column missing: {', '.join(missing)}")
    return _csv_rows(reader, columns, on_blank)


def _csv_rows(reader: Any, columns: list[str], on_blank: BlankCallback) -> Iterator[ParsedLine]:
    while True:
        line_no = reader.line_num + 1
        try:
            values = next(reader, None)
        except csv.Error as error:
            raise ImportFileError(f"line {line_no}: not valid CSV: {error}") from None
        if values is None:
            return
        if not any(v.strip() for v in values):
            if on_blank is not None:
                on_blank(line_no)
            continue
        if len(values) != len(columns):
            yield line_no, f"expected {len(columns)} fields as in the header, got {len(values)}"
            continue
        try:
            yield (
                line_no,
                _submission_from_row(dict(zip(columns, values, strict=True)), str(line_no)),
            )
        except ExchangeError as error:
            yield line_no, error.message


def iter_file(
    stream: IO[bytes],
    fmt: ImportFormat,
    *,
    delimiter: str | None = None,
    on_blank: BlankCallback = None,
) -> Iterator[ParsedLine]:
    """Parse a report file: one ``(line, Submission | error message)`` per record; a blank
    line is no record (``on_blank`` is told its number, for the summary)."""
    if fmt == "csv":
        return iter_csv(stream, delimiter=delimiter, on_blank=on_blank)
    return iter_jsonl(stream, on_blank=on_blank)


# -- streaming to a node -----------------------------------------------------------------------


@dataclass
class ImportSummary:
    """Running totals of an import; complete when ``run_import`` is exhausted."""

    read: int = 0
    submitted: int = 0
    new: int = 0
    duplicates: int = 0
    bad_lines: int = 0
    refused_by_node: int = 0
    blank_lines: int = 0  # skipped, not errors: spreadsheets and editors leave them
    destinations: Counter[str] = field(default_factory=Counter)

    @property
    def refused(self) -> int:
        return self.bad_lines + self.refused_by_node


@dataclass(frozen=True, slots=True)
class Refused:
    line: int
    reason: str
    by_node: bool


@dataclass(frozen=True, slots=True)
class Accepted:
    line: int
    response: ipb.SubmitReportResponse


ImportEvent = Refused | Accepted
SubmitMany = Callable[[Iterable[Submission]], Iterable[ipb.SubmitReportResponse]]


class _Feed:
    """The good records for ``submit_many``, counted; the bad lines held back for ``drain``.

    ``good`` runs on gRPC's thread, hence the lock around ``summary`` and the ``failure`` it
    leaves for the caller's thread (there an exception would only cancel the call).
    """

    def __init__(self, records: Iterable[ParsedLine], summary: ImportSummary) -> None:
        self.records = records
        self.summary = summary
        self.bad: collections.deque[Refused] = collections.deque()
        self.failure: list[BaseException] = []
        self.lock = threading.Lock()

    def good(self) -> Iterator[Submission]:
        summary = self.summary
        try:
            for line_no, parsed in self.records:
                with self.lock:
                    summary.read += 1
                    if isinstance(parsed, str):
                        summary.bad_lines += 1
                        self.bad.append(Refused(line_no, parsed, by_node=False))
                        continue
                    summary.submitted += 1
                yield parsed
        except Exception as error:
            # Raised on gRPC's thread, where it would only cancel the call: carry it over.
            self.failure.append(error)
            raise

    def drain(self, before: float) -> Iterator[ImportEvent]:
        # gRPC reads ahead of the answers: hand over only the bad lines that precede this
        # answer, so events come in file order.
        while self.bad and self.bad[0].line < before:
            yield self.bad.popleft()


def _count_response(summary: ImportSummary, response: ipb.SubmitReportResponse) -> None:
    if response.error_code:
        summary.refused_by_node += 1
    elif response.duplicate:
        summary.duplicates += 1
    else:
        summary.new += 1
    if not response.error_code:
        summary.destinations[response.decision.member] += 1


def _response_event(line_no: int, response: ipb.SubmitReportResponse) -> ImportEvent:
    if response.error_code:
        return Refused(line_no, f"{response.error_code}: {response.error}", by_node=True)
    return Accepted(line_no, response)


def run_import(
    records: Iterable[ParsedLine], submit_many: SubmitMany, summary: ImportSummary
) -> Iterator[ImportEvent]:
    """Submit the good records in order; yield one event per record, updating ``summary``."""
    feed = _Feed(records, summary)
    try:
        for response in submit_many(feed.good()):
            line_no = int(response.client_ref) if response.client_ref.isdigit() else 0
            yield from feed.drain(line_no)
            with feed.lock:
                _count_response(summary, response)
            yield _response_event(line_no, response)
    except Exception:
        if feed.failure:
            # The cancelled call is only the symptom; the cause is the reader's error.
            raise feed.failure[0] from None
        raise
    if feed.failure:
        raise feed.failure[0]
    yield from feed.drain(float("inf"))

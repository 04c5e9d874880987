"""CSV exports of cases, the routing log and statistics — streamed, and safe in a spreadsheet.

Each export is an iterator of CSV text chunks (``cases_csv``, ``log_csv``, ``statistics_csv``):
the web view streams it as a download, ``ihx export`` writes it to a file (``write_csv``).
Rows are read in keyset pages (``store/exports.py``, ``store/routing_log.py``), one short read
per page, so a million rows export in the memory of one page.

Cases' columns are a closed set (``CaseColumn``), chosen by the caller and validated with the
allowed values named in the error. The URL is a column only for a role allowed to see URLs: the
caller says so (``may_see_urls``) and without it the URL is neither asked for nor read.

These files open in spreadsheets, where a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or
a carriage return is a formula (CSV injection): every text cell starting so is prefixed with
``'`` (``cell``). Statistics are masked as the display must (``model.shown``: "<5").
"""

from __future__ import annotations

import csv
import enum
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TextIO

from sqlalchemy import Engine

from exchange.errors import MalformedRequest
from exchange.stats.model import EDGES_MS, MASK_BELOW, Merged, Snapshot, shown
from exchange.store import exports as store
from exchange.store.exports import CaseFilter
from exchange.store.routing_log import LogFilter, list_entries

__all__ = [
    "DEFAULT_CASE_COLUMNS",
    "LOG_COLUMNS",
    "STATISTICS_COLUMNS",
    "CaseColumn",
    "CaseFilter",
    "LogFilter",
    "case_columns",
    "cases_csv",
    "cell",
    "log_csv",
    "statistics_csv",
    "write_csv",
]

# A formula sign (ASCII or full-width, which spreadsheets also read as one) at the start of the
# text or of any piece a spreadsheet may split it into: after a separator (``;`` in de-DE or
# nl-NL Excel, ``,``, tab, CR, LF), with any whitespace before it.
FORMULA_SIGNS = "=+\\-@\uff1d\uff0b\uff0d\uff20"
_FORMULA = re.compile(f"(?:^|[;,\\t\\r\\n])[ \\t\\r\\n\\u3000]*[{FORMULA_SIGNS}]")
_NEEDS_LOOK = re.compile(f"[{FORMULA_SIGNS}\\t\\r]")
ROWS_PER_CHUNK = 500


class CaseColumn(enum.StrEnum):
    CASE_ID = "case_id"
    URL = "url"  # only for a role allowed to see URLs
    STATUS = "status"
    HOSTING_COUNTRY = "hosting_country"
    OPENED_AT = "opened_at"
    UPDATED_AT = "updated_at"
    CLOSED_AT = "closed_at"
    ANONYMISED_AT = "anonymised_at"
    ITEMS = "items"  # how many items the case has here
    STAGE = "stage"  # the items' stages (space-separated, sorted)
    CLASSIFICATION = "classification"  # the items' assessed classifications
    ORPHANED = "orphaned"  # any item hosted where the network has no member
    FIRST_REPORT = "first_report"
    REPORTS = "reports"  # how many reports are linked to it
    REPORTED_BY = "reported_by"  # the members that reported it
    MOVED_FROM = "moved_from"  # the member it came from by a move
    MOVED_FROM_CASE = "moved_from_case"


DEFAULT_CASE_COLUMNS: tuple[CaseColumn, ...] = (
    CaseColumn.CASE_ID,
    CaseColumn.OPENED_AT,
    CaseColumn.STATUS,
    CaseColumn.HOSTING_COUNTRY,
    CaseColumn.ITEMS,
    CaseColumn.STAGE,
    CaseColumn.CLASSIFICATION,
    CaseColumn.FIRST_REPORT,
    CaseColumn.MOVED_FROM,
)
LOG_COLUMNS = ("index", "at", "kind", "report_id", "member", "country", "detail", "entry_hash")
STATISTICS_COLUMNS = ("kind", "figure", "key", "period_start", "upper_ms", "value")
_ITEM_COLUMNS = frozenset(
    {CaseColumn.ITEMS, CaseColumn.STAGE, CaseColumn.CLASSIFICATION, CaseColumn.ORPHANED}
)
_REPORT_COLUMNS = frozenset({CaseColumn.REPORTS, CaseColumn.REPORTED_BY})


def case_columns(
    wanted: str | Sequence[str], *, may_see_urls: bool = False
) -> tuple[CaseColumn, ...]:
    """The columns named (``"case_id,status"`` or a list), in that order; an unknown, repeated
    or forbidden one is a ``MalformedRequest`` naming the allowed values."""
    names = wanted.split(",") if isinstance(wanted, str) else list(wanted)
    names = [n.strip() for n in names if n.strip()]
    allowed = [c.value for c in CaseColumn if may_see_urls or c is not CaseColumn.URL]
    if not names:
        raise MalformedRequest(f"no columns given; choose from: {', '.join(allowed)}")
    out: list[CaseColumn] = []
    for name in names:
        if name == CaseColumn.URL and not may_see_urls:
            raise MalformedRequest(
                "column 'url': this role may not see URLs (ask with --include-url, a role "
                "allowed to see them)"
            )
        if name not in allowed:
            raise MalformedRequest(
                f"unknown column {name[:40]!r}; choose from: {', '.join(allowed)}"
            )
        if CaseColumn(name) in out:
            raise MalformedRequest(f"column {name!r} given twice")
        out.append(CaseColumn(name))
    return tuple(out)


# -- cells and chunks -------------------------------------------------------------------------


def neutral(text: str) -> str:
    """``text`` with a ``'`` before every formula sign a spreadsheet could run: at the start, or
    at the start of a piece after a separator (``x;=1+1`` → ``x;'=1+1``); a leading tab or CR
    is prefixed too. Text without any sign is returned as is (the common, fast case)."""
    if _NEEDS_LOOK.search(text) is None:
        return text
    text = _FORMULA.sub(lambda m: m.group(0)[:-1] + "'" + m.group(0)[-1], text)
    return "'" + text if text.startswith(("\t", "\r")) else text


def cell(value: object) -> str:
    """A value as a CSV cell: times in UTC ISO 8601, booleans yes/no, lists space-separated,
    text that a spreadsheet would run as a formula neutralised (``neutral``)."""
    if type(value) is str:  # the common case first: a million rows call this for every cell
        return neutral(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    return neutral(str(value))


def _chunks(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """CSV text: the header, then the rows ``ROWS_PER_CHUNK`` at a time."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for n, row in enumerate(rows, start=1):
        writer.writerow([cell(v) for v in row])
        if n % ROWS_PER_CHUNK == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def write_csv(chunks: Iterable[str], out: TextIO) -> None:
    for chunk in chunks:
        out.write(chunk)


# -- cases ------------------------------------------------------------------------------------


def cases_csv(
    engine: Engine,
    columns: Sequence[CaseColumn] = DEFAULT_CASE_COLUMNS,
    where: CaseFilter | None = None,
    *,
    may_see_urls: bool = False,
    page_size: int = store.MAX_PAGE,
    before_page: Callable[[list[str]], None] | None = None,
) -> Iterator[str]:
    """The cases held here as CSV text chunks, in case id order. ``before_page`` is given each
    page's case ids before any of its rows is produced (the web view audits URL exports so)."""
    cols = case_columns([c.value for c in columns], may_see_urls=may_see_urls)
    return _chunks(
        [c.value for c in cols],
        _case_rows(engine, cols, where or CaseFilter(), may_see_urls, page_size, before_page),
    )


def _case_rows(
    engine: Engine,
    cols: Sequence[CaseColumn],
    where: CaseFilter,
    with_url: bool,
    page_size: int,
    before_page: Callable[[list[str]], None] | None,
) -> Iterator[list[object]]:
    after: str | None = None
    need_items, need_reports = bool(_ITEM_COLUMNS & set(cols)), bool(_REPORT_COLUMNS & set(cols))
    while True:
        with engine.connect() as conn:
            page = store.case_page(conn, where, after=after, size=page_size, with_url=with_url)
            ids = [c.id for c in page]
            items = store.case_items(conn, ids) if need_items else {}
            reports = store.case_reports(conn, ids) if need_reports else {}
        if before_page is not None:
            before_page(ids)
        getters = [_CASE_GETTERS[c] for c in cols]
        for case in page:
            facts = _Facts(case, items.get(case.id, _NO_ITEMS), reports.get(case.id, _NO_REPORTS))
            yield [get(facts) for get in getters]
        if len(page) < page_size:
            return
        after = page[-1].id


@dataclass(frozen=True, slots=True)
class _Facts:
    """One case's row and the figures of its page's other reads."""

    case: store.CaseRow
    items: store.CaseItems
    reports: tuple[int, list[str]]


_NO_ITEMS = store.CaseItems()
_NO_REPORTS: tuple[int, list[str]] = (0, [])
# One getter per column, built once: a row is a list of calls, not a dict per case.
_CASE_GETTERS: dict[CaseColumn, Callable[[_Facts], object]] = {
    CaseColumn.CASE_ID: lambda f: f.case.id,
    CaseColumn.URL: lambda f: f.case.url,
    CaseColumn.STATUS: lambda f: f.case.status,
    CaseColumn.HOSTING_COUNTRY: lambda f: f.case.hosting_country,
    CaseColumn.OPENED_AT: lambda f: f.case.opened_at,
    CaseColumn.UPDATED_AT: lambda f: f.case.updated_at,
    CaseColumn.CLOSED_AT: lambda f: f.case.closed_at,
    CaseColumn.ANONYMISED_AT: lambda f: f.case.anonymised_at,
    CaseColumn.ITEMS: lambda f: f.items.items,
    CaseColumn.STAGE: lambda f: f.items.stages,
    CaseColumn.CLASSIFICATION: lambda f: f.items.classifications,
    CaseColumn.ORPHANED: lambda f: f.items.orphaned,
    CaseColumn.FIRST_REPORT: lambda f: f.case.first_report_id,
    CaseColumn.REPORTS: lambda f: f.reports[0],
    CaseColumn.REPORTED_BY: lambda f: f.reports[1],
    CaseColumn.MOVED_FROM: lambda f: f.case.moved_from_member,
    CaseColumn.MOVED_FROM_CASE: lambda f: f.case.moved_from_case,
}


# -- the routing log --------------------------------------------------------------------------


def log_csv(engine: Engine, where: LogFilter | None = None) -> Iterator[str]:
    """The routing log's entries matching ``where`` (from its ``after_index``), oldest first."""
    return _chunks(LOG_COLUMNS, _log_rows(engine, where or LogFilter()))


def _log_rows(engine: Engine, where: LogFilter) -> Iterator[list[object]]:
    f = replace(where, page_size=1000)
    while True:
        with engine.connect() as conn:
            page, nxt = list_entries(conn, f)
        for e in page:
            yield [e.idx, e.at, e.kind, e.report_id, e.member, e.country, e.detail,
                   e.entry_hash.hex()]  # fmt: skip
        if nxt is None:
            return
        f = replace(f, after_index=nxt)


# -- statistics -------------------------------------------------------------------------------


def statistics_csv(source: Snapshot | Merged) -> Iterator[str]:
    """A snapshot as rows (``STATISTICS_COLUMNS``): whose figures (answered / missing members),
    counts per bucket, the duration histograms' non-empty buckets, the gauges; masked."""
    return _chunks(STATISTICS_COLUMNS, _statistics_rows(source))


def _statistics_rows(source: Snapshot | Merged) -> Iterator[Sequence[object]]:
    snap = source.snapshot if isinstance(source, Merged) else source
    if isinstance(source, Merged):
        yield from (["member", "answered", m, None, None, None] for m in source.answered)
        yield from (["member", "missing", m, None, None, why] for m, why in source.missing.items())
    else:
        yield from (["member", "answered", m, None, None, None] for m in snap.members)
    starts = snap.period.starts
    for (figure, key), row in sorted(snap.counts.items()):
        for start, n in zip(starts, row, strict=True):
            if n:
                yield ["count", figure.value, key, start, None, shown(figure, n)]
    for (figure, key), hist in sorted(snap.histograms.items()):
        if figure.finer_than_country and 0 < hist.total < MASK_BELOW:
            # Which buckets hold a masked count would tell its durations: one masked row.
            yield ["duration", figure.value, key, snap.period.first, None, shown(figure, 1)]
            continue
        for i, n in enumerate(hist.counts):
            if n:
                upper = EDGES_MS[i] if i < len(EDGES_MS) else "more"
                yield ["duration", figure.value, key, snap.period.first, upper, shown(figure, n)]
    for (figure, key), value in sorted(snap.gauges.items()):
        yield ["gauge", figure.value, key, None, None, shown(figure, value)]

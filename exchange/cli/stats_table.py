"""``ihx stats`` for people: one section per figure, readable at 80 columns.

The header says whose figures these are — the node's, or the network's with every member that
answered and every one that did not, with why (a missing member is never left out silently).
Then the volume over time (one row per bucket, the main counts as columns), one section per
count figure with its top keys, their totals and shares, one per duration figure with the
median, p90 and the shares INHOPE publishes (same day, within 3 and 7 days, beyond 28 days),
split in-network / orphan, and the gauges. Counts under 5 in breakdowns finer than a country
print as "<5", and their shares and times are left out (they would give the count away); in
such a breakdown no total, share or "more" row includes a masked count either (the masked one
would come back by subtraction). The moved share closes the counts: moved items of those held.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from exchange.cli.common import short_time
from exchange.cli.stats_formats import DurationSummary, Figures, moved_share, summarise
from exchange.stats.model import MASK_BELOW, Figure, Histogram, Snapshot, shown

__all__ = ["print_table"]

TITLES: dict[Figure, str] = {
    Figure.INTAKE: "Reports from analysts, by hosting country",
    Figure.SENT: "Reports sent, by member",
    Figure.RECEIVED: "Reports received, by member",
    Figure.ITEMS: "Items held, by hosting country",
    Figure.ITEMS_ORPHAN: "Items held: in-network vs orphan countries",
    Figure.ASSESSED: "Items assessed, by classification",
    Figure.CONTENT: "New vs known content",
    Figure.SITE_TYPE: "Items by site type",
    Figure.AGE_GROUP: "Illegal items by age group",
    Figure.GENDER: "Illegal items by gender",
    Figure.COMMERCIAL: "Commercial",
    Figure.CLOSED: "Items closed, by final stage",
    Figure.MOVED: "Items moved, by country moved to",
    Figure.DISPUTED: "Disputes",
    Figure.TO_LEA: "Time to law enforcement",
    Figure.TO_REMOVAL: "Time to removal",
    Figure.DELIVERY: "Delivery: intake to the peer's receipt",
    Figure.HOSTER_ITEMS: "Hosters: items notified",
    Figure.HOSTER_NOTICES: "Hosters: notices sent",
    Figure.HOSTER_REMOVED: "Hosters: items removed",
    Figure.HOSTER_ONLINE: "Hosters: items still online (now)",
    Figure.HOSTER_REMOVAL: "Hosters: first notice to removal",
    Figure.BACKLOG: "Delivery backlog (now), by destination",
    Figure.OPEN: "Open items (now), by queue",
}
OVER_TIME = (Figure.INTAKE, Figure.SENT, Figure.RECEIVED, Figure.ITEMS, Figure.ASSESSED)
_KEY_WIDTH = 34


def print_table(figures: Figures, console: Console, *, top: int = 10) -> None:
    snap = figures.snapshot
    _header(figures, console)
    console.print()
    _over_time(snap, console)
    for figure in Figure:
        if figure.is_duration:
            _durations(snap, figure, console, top)
        elif figure.is_gauge:
            _keyed(figure, snap.by_key(figure), console, top, shares=False)
        else:
            _keyed(figure, snap.by_key(figure), console, top, shares=True)
    _moved(snap, console)


def _moved(snap: Snapshot, console: Console) -> None:
    moved, held, share = moved_share(snap)
    if share is not None:
        console.print(f"moved: {moved} of {held} items ({share:.1%})")


def _header(figures: Figures, console: Console) -> None:
    snap, period = figures.snapshot, figures.snapshot.period
    if figures.network:
        whose = f"the network: {len(snap.members)} answered, {len(figures.missing)} missing"
    else:
        whose = f"node {', '.join(snap.members)}"
    console.print(f"Statistics of {whose}")
    console.print(
        f"{period.first} to {period.last} by {period.granularity.value} "
        f"({_plural(len(period.starts), 'bucket')}), generated {short_time(snap.generated_at)}"
    )
    if figures.network:
        console.print(f"Answered: {', '.join(snap.members) or 'none'}")
        for member, why in figures.missing.items():
            console.print(f"MISSING {member}: {why}")
    console.print(f'Counts under {MASK_BELOW} in a breakdown finer than a country show as "<5".')


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _table(title: str, *columns: str) -> Table:
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False
    )
    for i, name in enumerate(columns):
        if i == 0:
            table.add_column(name, max_width=_KEY_WIDTH, overflow="fold")
        else:
            table.add_column(name, justify="right", no_wrap=True)
    return table


def _over_time(snap: Snapshot, console: Console) -> None:
    table = _table("Volume over time", "from", *(f.value for f in OVER_TIME))
    for i, start in enumerate(snap.period.starts):
        row = [
            sum(r[i] for (f, _), r in snap.counts.items() if f is figure) for figure in OVER_TIME
        ]
        table.add_row(start.isoformat(), *(str(n) for n in row))
    table.add_row("total", *(str(snap.total(f)) for f in OVER_TIME), style="bold")
    console.print(table)
    console.print()


def _key_text(key: str) -> str:
    return key if key else "(none)"


def _keyed(
    figure: Figure, values: dict[str, int], console: Console, top: int, *, shares: bool
) -> None:
    if not values:
        return
    total = sum(values.values())
    # A sum including a masked count would give it away (sum minus the counts shown).
    hidden = any(_small(figure, n) for n in values.values())
    columns = (
        ("key", "now") if not shares else ("key", "count") if hidden else ("key", "count", "share")
    )
    shares = shares and not hidden
    table = _table(f"{TITLES[figure]} [{figure.value}]", *columns)
    for key, n in list(values.items())[:top]:
        share = "" if not total else f"{n / total:.1%}"
        table.add_row(_key_text(key), shown(figure, n), *((share,) if shares else ()))
    rest = list(values.values())[top:]
    if rest:
        label = f"… {len(rest)} more"
        table.add_row(label, "" if hidden else shown(figure, sum(rest)), *(("",) if shares else ()))
    if shares and len(values) > 1:
        table.add_row("total", shown(figure, total), f"{1:.1%}", style="bold")
    console.print(table)
    console.print()


def _small(figure: Figure, count: int) -> bool:
    return figure.finer_than_country and 0 < count < MASK_BELOW


def _durations(snap: Snapshot, figure: Figure, console: Console, top: int) -> None:
    rows = sorted(
        ((key, h) for (f, key), h in snap.histograms.items() if f is figure and h.total),
        key=lambda kh: (-kh[1].total, kh[0]),
    )
    if not rows:
        return
    table = _table(
        f"{TITLES[figure]} [{figure.value}]",
        "key", "n", "median", "p90", "same day", "≤3 d", "≤7 d", ">28 d",
    )  # fmt: skip
    for key, h in rows[:top]:
        table.add_row(_key_text(key), *_duration_cells(figure, h))
    # "all" would give a masked key's n away (all minus the n shown): left out then.
    if len(rows) > 1 and not any(_small(figure, h.total) for _, h in rows):
        table.add_row("all", *_duration_cells(figure, snap.histogram(figure)), style="bold")
    console.print(table)
    console.print()


def _duration_cells(figure: Figure, h: Histogram) -> Sequence[str]:
    if figure.finer_than_country and h.total < MASK_BELOW:
        return (shown(figure, h.total), "", "", "", "", "", "")
    s: DurationSummary = summarise(h)
    return (
        str(s.n),
        duration_text(s.median_ms, s.median_beyond),
        duration_text(s.p90_ms, s.p90_beyond),
        _share(s.same_day),
        _share(s.within_3d),
        _share(s.within_7d),
        _share(s.beyond_28d),
    )


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


_UNITS = ((86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1_000, "s"), (1, "ms"))


def duration_text(ms: int | None, beyond: bool = False) -> str:
    """An upper bucket edge as "≤2 d", "≤2.5 s" (or ">365 d" beyond the last edge)."""
    if ms is None:
        return ""
    size, unit = next((s, u) for s, u in _UNITS if ms >= s or s == 1)
    amount = f"{ms / size:g} {unit}"
    return f">{amount}" if beyond else f"≤{amount}"

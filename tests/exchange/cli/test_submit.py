"""``ihx submit`` and ``ihx import`` against a real federation on loopback."""

from __future__ import annotations

import json
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from typer.testing import CliRunner

from exchange.cli.main import app
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import intake_pb2_grpc as igrpc
from tests.exchange.cli.conftest import Running, wait_for


def sha(seed: str) -> str:
    return "sha256:" + (seed * 64)[:64]


def submit(
    runner: CliRunner, federation: Running, *args: str, member: str = "nl-eokm"
) -> dict[str, Any]:
    result = runner.invoke(app, ["submit", "--node", federation.address(member), "--json", *args])
    assert result.exit_code == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_submit_prints_id_decision_and_duplicate(runner: CliRunner, federation: Running) -> None:
    args = [
        "--node",
        federation.address("nl-eokm"),
        "--url",
        "https://Example.DE/a/../x.jpg#frag",
        "--hash",
        sha("a"),
        "--hash",
        "md5:" + "b" * 32,
        "--classification",
        "baseline",
        "--media-type",
        "video",
        "--age-group",
        "prepubescent",
        "--site-type",
        "forum",
        "--commercial",
        "--payment-method",
        "btc",
        "--notes",
        "seen twice",
    ]
    result = runner.invoke(app, ["submit", *args])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    report_id = lines[0].split()[1]
    assert report_id.startswith("r-")
    assert "URL         https://example.de/x.jpg" in lines
    assert "decision    de-eco (served-member): DE is served by member de-eco" in lines
    assert "duplicate   no" in lines
    assert "item 0      new content" in lines
    stored = federation.query(
        "nl-eokm",
        "select site_type, commercial, payment_methods, notes from reports where id = ?",
        (report_id,),
    )
    assert stored == [("forum", 1, '["btc"]', "seen twice")]

    again = runner.invoke(app, ["submit", *args, "--json"])
    doc = json.loads(again.stdout)
    assert doc["report_id"] == report_id
    assert doc["duplicate"] is True
    assert doc["decision"] == {
        "member": "de-eco",
        "reason": "served-member",
        "country": "DE",
        "explanation": "DE is served by member de-eco",
        "manifest_epoch": 1,
    }
    assert doc["trace"]["addresses"][0]["address"] == "2a01:4f8::1"


def test_submit_shows_known_content_from_the_network(
    runner: CliRunner, federation: Running
) -> None:
    first = submit(
        runner,
        federation,
        "--url",
        "https://example.de/first",
        "--hash",
        sha("c"),
        "--classification",
        "national",
    )
    # de-eco opens the case and announces the hash; nl-eokm learns it.
    wait_for(
        lambda: bool(
            federation.query("nl-eokm", "select 1 from hash_index where hex = ?", (sha("c")[7:],))
        )
    )
    second = submit(
        runner,
        federation,
        "--url",
        "https://example.nl/second",
        "--hash",
        sha("c"),
        "--classification",
        "baseline",
    )
    item = second["items"][0]
    assert item["known_content"] is True
    assert item["first_seen_member"] == "de-eco"
    ((opened,),) = federation.query(
        "de-eco", "select case_id from reports where id = ?", (first["report_id"],)
    )
    assert item["first_seen_case"] == opened
    assert item["first_classification"] == "national"
    text = runner.invoke(
        app,
        [
            "submit",
            "--node",
            federation.address("nl-eokm"),
            "--url",
            "https://example.nl/second",
            "--hash",
            sha("c"),
            "--classification",
            "baseline",
        ],
    ).stdout
    assert f"known content: first seen by de-eco in case {item['first_seen_case']}" in text


def test_submit_from_json_file_and_stdin(
    runner: CliRunner, federation: Running, tmp_path: Path
) -> None:
    report = {
        "url": "https://example.jp/orphan",
        "site_type": "image_host",
        "items": [{"hashes": [sha("d")], "classification": "doubtful", "media_type": "file"}],
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report), encoding="utf-8")
    doc = submit(runner, federation, "--from-json", str(path))
    assert doc["decision"]["member"] == "de-eco"
    assert doc["decision"]["reason"] == "orphan-rule"
    result = runner.invoke(
        app,
        ["submit", "--node", federation.address("nl-eokm"), "--from-json", "-", "--json"],
        input=json.dumps(report),
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["duplicate"] is True


def test_submit_errors_are_one_line_and_store_nothing(
    runner: CliRunner, federation: Running, tmp_path: Path
) -> None:
    node = federation.address("nl-eokm")
    cases = [
        (
            [
                "--url",
                "https://example.nl/",
                "--hash",
                "sha256:abc",
                "--classification",
                "baseline",
            ],
            "64 hex digits",
        ),
        (
            ["--url", "ftp://", "--hash", sha("e"), "--classification", "baseline"],
            "INVALID_ARGUMENT",
        ),
        (["--url", "https://example.nl/", "--classification", "baseline"], "--hash"),
        (["--from-json", str(tmp_path / "missing.json")], "missing.json"),
        (["--from-json", "-", "--url", "https://example.nl/"], "--from-json FILE or"),
    ]
    for args, fragment in cases:
        result = runner.invoke(app, ["submit", "--node", node, *args], input="{}")
        assert result.exit_code == 2, (args, result.stdout)
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert fragment in result.stderr, (fragment, result.stderr)
    bad = runner.invoke(app, ["submit", "--node", node, "--from-json", "-"], input='{"url": 1}')
    assert bad.exit_code == 2
    assert "url" in bad.stderr
    assert federation.query("nl-eokm", "select count(*) from reports") == [(0,)]


def _jsonl(path: Path, records: list[object | str]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _record(url: str, seed: str, **extra: object) -> dict[str, object]:
    return {"url": url, "items": [{"hashes": [sha(seed)], "classification": "baseline"}], **extra}


def test_import_jsonl_reports_bad_lines_and_rerun_creates_nothing(
    runner: CliRunner, federation: Running, tmp_path: Path
) -> None:
    path = _jsonl(
        tmp_path / "reports.jsonl",
        [
            _record("https://example.de/1", "1"),  # line 1 → de-eco
            _record("https://example.nl/2", "2", site_type="forum", commercial=True),  # local
            "{not json",  # line 3
            "",  # blank: not a record
            _record("javascript:alert(1)", "5"),  # line 5: the node refuses the URL
            _record("https://example.jp/6", "6"),  # orphan → de-eco
            {
                "url": "https://example.us/7",
                "items": [{"hashes": ["sha256:12"], "classification": "baseline"}],
            },
            _record("https://private.example/8", "8"),  # untraceable → inhope
            _record("https://example.de/9", "9", colour="red"),  # unknown field
        ],
    )
    node = federation.address("nl-eokm")
    result = runner.invoke(app, ["import", str(path), "--node", node, "--chunk", "2"])
    assert result.exit_code == 1  # some lines were refused
    err_lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in err_lines] == [
        "line 3",
        "line 5",
        "line 7",
        "line 9",
    ]
    assert "refused by the node: scheme-not-allowed" in err_lines[1]
    assert "items[0].hashes[0]" in err_lines[2]
    assert "colour: unknown field" in err_lines[3]
    out = result.stdout.splitlines()
    assert "read          8" in out
    assert "submitted     5" in out
    assert "new           4" in out
    assert "duplicates    0 (already held by the node)" in out
    assert "refused       4 (3 bad lines, 1 refused by the node)" in out
    assert "destinations  de-eco 2, inhope 1, nl-eokm 1" in out

    refs = federation.query("nl-eokm", "select count(*) from reports")
    assert refs == [(4,)]
    rerun = runner.invoke(app, ["import", str(path), "--node", node])
    assert rerun.exit_code == 1
    assert "new           0" in rerun.stdout
    assert "duplicates    4 (already held by the node)" in rerun.stdout
    assert federation.query("nl-eokm", "select count(*) from reports") == refs
    outbox_and_deliveries = federation.query(
        "nl-eokm", "select (select count(*) from outbox) + (select count(*) from deliveries)"
    )
    assert outbox_and_deliveries == [(3,)]  # three remote reports, each queued or delivered once


def test_import_csv_and_clean_file_exits_0(
    runner: CliRunner, federation: Running, tmp_path: Path
) -> None:
    path = tmp_path / "reports.csv"
    path.write_text(
        "url,classification,hashes,media_type,age_group,site_type,commercial,notes\n"
        f"https://example.de/a,baseline,{sha('a')};md5:{'a' * 32},"
        'image,infant,forum,yes,"two\nlines"\n'
        f"https://example.nl/b,national,{sha('b')},,,,,\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["import", str(path), "--node", federation.address("nl-eokm")])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "new           2" in result.stdout
    assert "destinations  de-eco 1, nl-eokm 1" in result.stdout
    rows = federation.query(
        "nl-eokm", "select url, site_type, commercial, notes from reports order by url"
    )
    assert rows == [
        ("https://example.de/a", "forum", 1, "two\nlines"),
        ("https://example.nl/b", "website", 0, ""),
    ]


def test_import_file_errors_exit_2(runner: CliRunner, federation: Running, tmp_path: Path) -> None:
    node = federation.address("nl-eokm")
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("url,classification,hashes,colour\n", encoding="utf-8")
    result = runner.invoke(app, ["import", str(bad_header), "--node", node])
    assert result.exit_code == 2
    assert "unknown column 'colour'" in result.stderr
    result = runner.invoke(app, ["import", str(tmp_path / "nope.jsonl"), "--node", node])
    assert result.exit_code == 2
    assert "nope.jsonl" in result.stderr
    result = runner.invoke(app, ["import", str(bad_header), "--node", node, "--format", "xml"])
    assert result.exit_code == 2
    assert "--format" in result.stderr


def test_import_from_stdin(runner: CliRunner, federation: Running) -> None:
    text = json.dumps(_record("https://example.nl/stdin", "f")) + "\n"
    result = runner.invoke(
        app, ["import", "-", "--node", federation.address("nl-eokm")], input=text
    )
    assert result.exit_code == 0, result.stderr
    assert "new           1" in result.stdout


class _RecordingIntake(igrpc.IntakeServicer):
    """A stand-in node that records the metadata each call arrived with."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    def SubmitReport(
        self, request: ipb.SubmitReportRequest, context: grpc.ServicerContext
    ) -> ipb.SubmitReportResponse:
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
        return ipb.SubmitReportResponse(report_id="r-" + "0" * 32, canonical_url=request.url)


def test_submit_sends_the_token_as_a_bearer(runner: CliRunner) -> None:
    servicer = _RecordingIntake()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    igrpc.add_IntakeServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        args = ["submit", "--node", f"127.0.0.1:{port}", "--url", "https://example.nl/"]
        args += ["--hash", sha("a"), "--classification", "baseline", "--json"]
        result = runner.invoke(app, [*args, "--token", "tok.en.1"], env={"IHX_TOKEN": ""})
        assert result.exit_code == 0, result.stderr
        result = runner.invoke(app, args, env={"IHX_TOKEN": "tok.en.2"})
        assert result.exit_code == 0, result.stderr
    finally:
        server.stop(0)
    assert [m.get("authorization") for m in servicer.metadata] == [
        "Bearer tok.en.1",
        "Bearer tok.en.2",
    ]

"""The node runs the notifier from ``[notices]`` (exchange/node.py's wiring).

A one-member network (nl-eokm, its own coordinator) provisioned on 127.0.0.1 with notices
enabled: the directory file, the hotline, the relay (aiosmtpd, plaintext on loopback) and a
short tick. A report submitted to the running node, assessed illegal and watched online gets
its notice from the node's own background pass. A directory that does not load, or a login
without a password, stops the node from being built.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange.domain import Classification
from exchange.errors import ConfigError
from exchange.lifecycle.model import Assessment, Stage
from exchange.node import Node, build_node
from tests.dbs import Databases
from tests.exchange.factories import case_of, make_submission, one_member_settings
from tests.exchange.takedown.factories import insert_watches, watch_row
from tests.exchange.takedown.smtp import SmtpRelay
from tests.integration.support import wait_until

NL = "nl-eokm"
URL = "https://hosting-nl.example/a.jpg"
ABUSE = "abuse@hosting.example.nl"


def notices_settings(relay: SmtpRelay, directory: Path, **extra: str) -> str:
    lines = [
        "[notices]",
        "enabled = true",
        f'directory = "{directory}"',
        'hotline = "Meldpunt Kinderporno (EOKM)"',
        'from_address = "notices@hotline.example.nl"',
        'relay_host = "127.0.0.1"',
        f"relay_port = {relay.port}",
        "starttls = false",
        "timeout_s = 5.0",
        "tick_s = 0.05",
        *(f"{k} = {v}" for k, v in extra.items()),
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "abuse-contacts.toml"
    path.write_text(f'[[contact]]\nasn = 64500\naddress = "{ABUSE}"\n', encoding="utf-8")
    return path


@pytest.fixture
def node(tmp_path: Path, databases: Databases, relay: SmtpRelay, directory: Path) -> Iterator[Node]:
    running = build_node(
        one_member_settings(tmp_path, databases, notices_settings(relay, directory))
    )
    running.start()
    yield running
    running.stop(grace=0)


def test_the_running_node_sends_the_notice(node: Node, relay: SmtpRelay) -> None:
    assert node.notifier is not None
    result = node.intake.submit(make_submission(URL))
    case_id = case_of(node.engine, result.report_id)
    node.case_work.assess(case_id, [], Assessment(Classification.BASELINE))
    insert_watches(node.engine, watch_row(case_id))
    wait_until(lambda: relay.messages, what="the node's notice pass to reach the relay")
    (msg,) = relay.parsed()
    assert msg["To"] == ABUSE
    assert URL in msg.get_body().get_content()  # type: ignore[union-attr]
    wait_until(
        lambda: node.case_views.case(case_id).items[0].stage is Stage.ACTIONED,
        what="reported_to_host recorded",
    )


def test_notices_off_means_no_notifier(tmp_path: Path, databases: Databases) -> None:
    node = build_node(one_member_settings(tmp_path, databases, ""))
    try:
        assert node.notifier is None
    finally:
        node.engine.dispose()
        node.geoip.close()


def test_a_broken_directory_stops_the_build(
    tmp_path: Path, databases: Databases, relay: SmtpRelay
) -> None:
    broken = tmp_path / "contacts.toml"
    broken.write_text('[[contact]]\nasn = 64500\naddress = "nope"\n', encoding="utf-8")
    settings = one_member_settings(tmp_path, databases, notices_settings(relay, broken))
    with pytest.raises(ConfigError, match="contact #1: address: 'nope'"):
        build_node(settings)


def test_a_login_needs_its_password(
    tmp_path: Path, databases: Databases, relay: SmtpRelay, directory: Path
) -> None:
    settings = one_member_settings(
        tmp_path, databases, notices_settings(relay, directory, username='"notices"')
    )
    with pytest.raises(ConfigError, match="IHX_NOTICES_PASSWORD"):
        build_node(settings)

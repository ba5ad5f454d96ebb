"""`eventfleet dlq` on the real stack: dead letters a consumer wrote are listed, shown,
replayed (fixed up, through the contract) and purged; a replay sends nothing twice and a
replayed event counts once, also when a replay dies between Kafka and PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import TopicPartition

from eventfleet.consumer.dlq import cli, table
from eventfleet.consumer.runtime import Consumer
from tests.fixtures.consumer_bench import ConsumerBench, in_both_stores
from tests.fixtures.waiting import wait_for
from tests.integration.consumer.expected import expected_stats, stored_stats
from tests.integration.consumer.helpers import generate_events, running

pytestmark = pytest.mark.integration

WHEN = "2026-11-30T10:00:00Z"
BAD_SCORE = {"event_id": "6f7c1d2e-0000-4000-8000-000000000001", "event_type": "match_completed",
             "player_id": "p1", "game_id": "game1", "timestamp": WHEN,
             "data": {"score": "lots", "won": True}}  # fmt: skip
NO_PLAYER = {"event_type": "player_level_up", "game_id": "game2", "timestamp": WHEN,
             "data": {"level": 12}}  # fmt: skip
NOT_JSON = b'{"event_type": "match_completed", "player_id": '


def dlq(dsn: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(["--dsn", dsn, *args])
    return code, capsys.readouterr().out


def end_offset(bootstrap: str, topic: str) -> int:
    reader = KafkaConsumer({"bootstrap.servers": bootstrap, "group.id": "dlq-test-watermarks"})
    try:
        return int(reader.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        reader.close()


def with_fix(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(event))
    return copy | changes


def test_dead_letters_are_listed_shown_replayed_once_and_purged(  # noqa: PLR0915 - one story
    bench: ConsumerBench,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    postgres_dsn, stack = bench.dsn, bench.stack
    good = generate_events(200, seed=31)
    topic = bench.topic_with(good, partitions=1)
    bench.produce_raw(topic, [json.dumps(e).encode() for e in (BAD_SCORE, NO_PLAYER)])
    bench.produce_raw(topic, [NOT_JSON])
    consumer = bench.consumer("stats", topic, batch_size=50)
    with running(consumer):
        bench.wait_processed(203, timeout=90, what="the records")
        reasons = [r for (r,) in bench.rows("SELECT reason FROM dlq_events ORDER BY id")]
        assert reasons == ["invalid_data", "missing_field", "invalid_json"]
        bad_score, no_player, not_json = (
            i for (i,) in bench.rows("SELECT id FROM dlq_events ORDER BY kafka_offset")
        )

        code, out = dlq(postgres_dsn, capsys, "list", "--group", consumer.settings.group)
        assert code == 0
        group = re.escape(consumer.settings.group)
        for reason in ("invalid_data", "missing_field", "invalid_json"):
            assert re.search(rf"{group}\s+{reason}\s+1\s+0", out), out
        assert "3 dead letters, 0 replayed" in out
        assert dlq(postgres_dsn, capsys, "list", "--since", "1h", "--reason", "nope")[1].startswith(
            "no dead letters match"
        )

        code, out = dlq(postgres_dsn, capsys, "show", str(not_json))
        assert code == 0
        assert f"{topic}/0/202" in out
        assert "invalid_json" in out
        assert NOT_JSON.decode() in out
        assert "7b 22 65 76" in dlq(postgres_dsn, capsys, "show", str(not_json), "--hex")[1]
        assert dlq(postgres_dsn, capsys, "show", "999999999")[0] == 1

        # A dry run says what would go and what would still be refused, and sends nothing.
        before = end_offset(stack.kafka_bootstrap, topic)
        code, out = dlq(postgres_dsn, capsys, "replay", "--dry-run", "--set", "data.score=7",
                        "--bootstrap", stack.kafka_bootstrap)  # fmt: skip
        assert code == 1  # two rows would still be refused
        assert f"would send {bad_score} to {topic}" in out
        assert f"refused {no_player}: missing_field" in out
        assert f"refused {not_json}: invalid_json" in out
        assert end_offset(stack.kafka_bootstrap, topic) == before

        # A replay that dies after Kafka acknowledged, before PostgreSQL committed: the row stays
        # unreplayed, and the second attempt sends the same event_id again.
        def die(*_: object) -> None:
            raise psycopg2.OperationalError("connection lost before the commit")

        monkeypatch.setattr(table, "mark_replayed", die)
        args = ["replay", "--id", str(bad_score), "--set", "data.score=7",
                "--bootstrap", stack.kafka_bootstrap]  # fmt: skip
        assert dlq(postgres_dsn, capsys, *args)[0] == 1
        monkeypatch.undo()
        assert end_offset(stack.kafka_bootstrap, topic) == before + 1
        code, out = dlq(postgres_dsn, capsys, *args)
        assert code == 0, out
        assert "sent 1, refused 0, failed 0" in out
        assert end_offset(stack.kafka_bootstrap, topic) == before + 2
        # Replaying again finds nothing left to send.
        assert "0 not yet replayed: sent 0" in dlq(postgres_dsn, capsys, *args)[1]
        assert end_offset(stack.kafka_bootstrap, topic) == before + 2

        patch = json.dumps({"player_id": "p9"})
        code, out = dlq(postgres_dsn, capsys, "replay", "--reason", "missing_field", "--patch",
                        patch, "--bootstrap", stack.kafka_bootstrap)  # fmt: skip
        assert code == 0, out
        assert "1 not yet replayed: sent 1, refused 0, failed 0" in out

        fixed = [
            with_fix(BAD_SCORE, data={"score": 7, "won": True}),
            with_fix(NO_PLAYER, player_id="p9"),
        ]
        bench.wait_processed(206, timeout=60, what="the replays")
        wait_for(lambda: stored_stats(postgres_dsn) == expected_stats(good + fixed), timeout=30,
                 what="the replayed events counted once")  # fmt: skip
        assert bench.stats() == in_both_stores(expected_stats(good + fixed))

    replayed = bench.rows(
        "SELECT id, replayed_to FROM dlq_events WHERE replayed_at IS NOT NULL ORDER BY id",
    )
    assert replayed == [(bad_score, topic), (no_player, topic)]
    assert dlq(postgres_dsn, capsys, "purge")[0] == 2  # never everything by accident
    assert dlq(postgres_dsn, capsys, "purge", "--replayed")[1] == "purged 2 dead letters\n"
    assert [i for (i,) in bench.rows("SELECT id FROM dlq_events")] == [not_json]


def test_dead_letters_expire_after_the_retention(bench: ConsumerBench) -> None:
    topic = bench.topic(partitions=1)
    bench.produce_raw(topic, [NOT_JSON, NOT_JSON + b"x"])
    settings = bench.settings("logger", topic, dlq_retention_days=30)
    with running(Consumer(settings)):
        bench.wait_processed(2, timeout=60, what="the records")
    with psycopg2.connect(bench.dsn) as connection, connection.cursor() as cursor:
        cursor.execute("UPDATE dlq_events SET failed_at = now() - interval '31 days' "
                       "WHERE kafka_offset = 0")  # fmt: skip
    with running(Consumer(settings)):  # maintenance runs first thing
        wait_for(lambda: len(bench.rows("SELECT id FROM dlq_events")) == 1, timeout=30,
                 what="the expired dead letter deleted")  # fmt: skip
    assert bench.rows("SELECT kafka_offset FROM dlq_events") == [(1,)]


def test_a_replay_reaches_a_secured_kafka_with_the_binding_alone(
    bench: ConsumerBench, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    postgres_dsn, stack = bench.dsn, bench.stack
    topic = bench.topic(partitions=1)
    bench.produce_raw(topic, [json.dumps(BAD_SCORE).encode()])
    with running(bench.consumer("stats", topic, batch_size=50)):
        bench.wait_processed(1, timeout=90, what="the record")
    assert bench.rows("SELECT reason FROM dlq_events") == [("invalid_data",)]
    before = end_offset(stack.kafka_bootstrap, topic)
    # No --bootstrap: the binding's own (the SASL_SSL listener), with its SCRAM credentials.
    code, out = dlq(postgres_dsn, capsys, "replay", "--set", "data.score=7",
                    "--kafka-auth", str(stack.kafka_sasl_binding))  # fmt: skip
    assert code == 0, out
    assert "sent 1" in out
    assert end_offset(stack.kafka_bootstrap, topic) == before + 1
    # A binding that cannot be used is refused before anything is sent, naming the key.
    broken = tmp_path / "binding.json"
    broken.write_text(
        json.dumps(
            {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "username": "u"}
        )
    )
    capsys.readouterr()
    assert cli.main(["--dsn", postgres_dsn, "replay", "--kafka-auth", str(broken)]) != 0
    assert "--kafka-auth: missing key password" in capsys.readouterr().err

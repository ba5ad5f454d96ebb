"""Shipped migrations are never edited, not even their comments: the runner refuses a database
whose applied migration's checksum (of the whole file) differs from the image's, so an edit of a
released file stops every consumer of every database that applied it. A schema change is a new
file, listed here with its checksum.

(shared/0001's header still names the design document of the project's first draft, which the
repository does not hold: it stays, for this reason. The tables it makes are described in
docs/consumer.md and docs/operations.md.)
"""

from __future__ import annotations

from eventfleet.consumer import migrate

SHIPPED = {
    "shared/0001_offsets_and_dlq.sql": "051973cd7a37eb86",
    "shared/0002_sink_progress.sql": "8f41dac816d81cfe",
    "shared/0003_dlq_replay.sql": "f26126bf9a8b25dd",
    "logger/0001_events.sql": "6b99c4437a57ca77",
    "stats/0001_player_statistics.sql": "f51a6efcf5aabd9e",
    "stats/0002_fillfactor.sql": "4f8b1779f204c9e3",
    "stats/0003_byte_order_keys.sql": "baf1656f4aa84ee8",
    "stats/0004_player_first_key.sql": "f91202666539d8c1",
    "stats/0005_changed_fields.sql": "a2303bcbe37e3dc6",
    "stats/0006_counted_events.sql": "cb2da474d093d001",
    "leaderboard/0001_leaderboards.sql": "f8d420c9148014c0",
    "leaderboard/0002_one_row_per_player_and_period.sql": "07348d4794712327",
    "leaderboard/0003_byte_order_keys.sql": "bda106707ba804eb",
    "leaderboard/0004_player_first_key.sql": "3099172c5ee4e94d",
    "leaderboard/0005_counted_events.sql": "d7d0bec42356cc35",
}
TRACKS = ("shared", "logger", "stats", "leaderboard")


def test_no_shipped_migration_was_edited() -> None:
    found = {m.label: m.checksum[:16] for track in TRACKS for m in migrate.load(track)}
    edited = sorted(
        label for label, checksum in SHIPPED.items() if found.get(label, checksum) != checksum
    )
    assert edited == [], f"edited after release (ship a new migration instead): {edited}"


def test_no_shipped_migration_is_gone_and_every_new_one_is_listed() -> None:
    found = {m.label for track in TRACKS for m in migrate.load(track)}
    assert sorted(set(SHIPPED) - found) == [], "a released migration was removed or renamed"
    assert sorted(found - set(SHIPPED)) == [], "list a new migration's checksum in SHIPPED"

-- The event_ids this mode has counted, so that a retried event (same event_id, another Kafka
-- record) is not counted twice. Rows are inserted in the batch's own transaction, beside the
-- aggregates and the offsets, and deleted once older than the dedup window (maintenance).
CREATE TABLE IF NOT EXISTS leaderboard_counted_events (
    event_id   uuid        PRIMARY KEY,
    counted_at timestamptz NOT NULL DEFAULT now()
);
-- Rows arrive in counted_at order, so a BRIN index finds the expired ones for a few pages of
-- index instead of a B-tree entry per event.
CREATE INDEX IF NOT EXISTS leaderboard_counted_events_counted_at
    ON leaderboard_counted_events USING brin (counted_at);

-- Every valid event. Partitioned by event time, one partition per UTC day: the consumer creates
-- partitions ahead of time and drops whole partitions when they expire (retention without bulk
-- DELETE). The primary key includes the partition key, as PostgreSQL requires; a replayed event
-- has the same id and the same time, so it still deduplicates.
CREATE TABLE IF NOT EXISTS events (
    event_id        uuid        NOT NULL,
    event_time      timestamptz NOT NULL,
    event_type      text        NOT NULL,
    game_id         text        NOT NULL,
    player_id       text        NOT NULL,
    data            jsonb       NOT NULL,
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (event_id, event_time)
) PARTITION BY RANGE (event_time);
CREATE INDEX IF NOT EXISTS events_game_player_time ON events (game_id, player_id, event_time);

-- Progress belongs to the sink (one mode's tables in this database), not to a Kafka consumer
-- group: a renamed group or EventConsumer continues from here, and a recreated topic is told
-- apart by its Kafka topic id. The first time a partition's row is needed, it starts from the
-- consumer_offsets row of the writer's group, if any (the progress kept before this table).
CREATE TABLE IF NOT EXISTS sink_offsets (
    sink            text        NOT NULL,  -- the mode: logger, stats or leaderboard
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    next_offset     bigint      NOT NULL,  -- -1: no progress recorded yet (a row to lock)
    topic_id        text,                  -- the topic incarnation next_offset counts in
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sink, topic, kafka_partition)
);

-- Who writes each sink: one writer per mode and database. A second EventConsumer of the same
-- mode on this database is refused, not left to add into the same rows.
CREATE TABLE IF NOT EXISTS sink_owners (
    sink           text        PRIMARY KEY,
    owner          text        NOT NULL,  -- namespace/name of the EventConsumer
    owner_uid      text,                  -- its Kubernetes uid (a recreated one is a new owner)
    consumer_group text,
    claimed_at     timestamptz NOT NULL DEFAULT now()
);

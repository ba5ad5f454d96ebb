-- Shared by every mode: exactly-once progress and the dead-letter table.
-- See ../shared/design/architecture.md, "Delivery".

-- The next offset to process per (group, topic, partition). A mode's rows and this row change in
-- one transaction; -1 means "no progress recorded yet" (the row exists so that it can be locked).
CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    next_offset     bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);

-- Records that could not be processed: the raw bytes, why, and where they came from. Unique per
-- group and source position, so a replay does not add a second row.
CREATE TABLE IF NOT EXISTS dlq_events (
    id              bigserial   PRIMARY KEY,
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    raw             bytea       NOT NULL,
    reason          text        NOT NULL,
    message         text        NOT NULL,
    errors          jsonb       NOT NULL DEFAULT '[]',
    failed_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (consumer_group, topic, kafka_partition, kafka_offset)
);
CREATE INDEX IF NOT EXISTS dlq_events_reason_failed_at ON dlq_events (reason, failed_at);

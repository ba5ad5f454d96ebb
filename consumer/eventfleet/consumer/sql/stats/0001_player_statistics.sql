-- Per-player aggregates, upserted additively once per batch (exactly once thanks to the offsets
-- written in the same transaction). `version` grows with every update.
CREATE TABLE IF NOT EXISTS player_statistics (
    game_id         text          NOT NULL,
    player_id       text          NOT NULL,
    total_events    bigint        NOT NULL DEFAULT 0,
    logins          bigint        NOT NULL DEFAULT 0,
    logouts         bigint        NOT NULL DEFAULT 0,
    level_ups       bigint        NOT NULL DEFAULT 0,
    matches_played  bigint        NOT NULL DEFAULT 0,
    achievements    bigint        NOT NULL DEFAULT 0,
    purchases       bigint        NOT NULL DEFAULT 0,
    other_events    jsonb         NOT NULL DEFAULT '{}',
    wins            bigint        NOT NULL DEFAULT 0,
    total_score     bigint        NOT NULL DEFAULT 0,
    high_score      bigint        NOT NULL DEFAULT 0,
    kills           bigint        NOT NULL DEFAULT 0,
    deaths          bigint        NOT NULL DEFAULT 0,
    max_level       integer       NOT NULL DEFAULT 0,
    total_spent     numeric(24,4) NOT NULL DEFAULT 0,
    first_seen      timestamptz   NOT NULL,
    last_seen       timestamptz   NOT NULL,
    version         bigint        NOT NULL DEFAULT 1,
    updated_at      timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, player_id)
);

-- Sum two {"event_type": count} objects (counts of event types outside the known six).
CREATE OR REPLACE FUNCTION eventfleet_add_counts(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, coalesce((a->>k)::bigint, 0) + coalesce((b->>k)::bigint, 0)), '{}')
    FROM jsonb_object_keys(a || b) AS k
$$;

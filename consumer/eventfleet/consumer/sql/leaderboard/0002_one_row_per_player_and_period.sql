-- Replaces 0001's table (one row per board) before it held anything worth keeping; a new
-- migration rather than an edit of 0001, which databases have already applied.
DROP TABLE IF EXISTS leaderboards;

-- One row per (game, period, period key, player) holding every board: total_score and wins add
-- up, high_score and level keep the maximum. period_key is 'all_time', a UTC date (daily,
-- 2026-11-27) or an ISO week (weekly, 2026-W48). `boards` is a bit set of the boards the player
-- has ever entered (1 total_score, 2 high_score, 4 level, 8 wins): a 0 in a column the player
-- never entered is not a place on that board.
--
-- Four boards in one row instead of one row per board: a match changes three boards, so this is
-- a third of the rows to upsert per batch. No index on the scores: every batch changes
-- thousands of them, and an index would turn each change into index writes (no HOT update).
-- Top-N reads are Redis's job; a full rebuild ranks with a window function over one scan.
CREATE TABLE IF NOT EXISTS leaderboards (
    game_id     text        NOT NULL,
    period      text        NOT NULL CHECK (period IN ('all_time', 'daily', 'weekly')),
    period_key  text        NOT NULL,
    player_id   text        NOT NULL,
    total_score bigint      NOT NULL DEFAULT 0,
    high_score  bigint      NOT NULL DEFAULT 0,
    level       integer     NOT NULL DEFAULT 0,
    wins        bigint      NOT NULL DEFAULT 0,
    boards      smallint    NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, period, period_key, player_id)
) WITH (fillfactor = 80);

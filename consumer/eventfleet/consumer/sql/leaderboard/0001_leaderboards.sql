-- Scores per (game, board, period): period_key is 'all_time', a UTC date (daily, 2026-11-27) or
-- an ISO week (weekly, 2026-W48). total_score and wins add up; high_score and level keep the max.
CREATE TABLE IF NOT EXISTS leaderboards (
    game_id     text        NOT NULL,
    board       text        NOT NULL CHECK (board IN ('total_score', 'high_score', 'level', 'wins')),
    period      text        NOT NULL CHECK (period IN ('all_time', 'daily', 'weekly')),
    period_key  text        NOT NULL,
    player_id   text        NOT NULL,
    score       bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (game_id, board, period, period_key, player_id)
);
CREATE INDEX IF NOT EXISTS leaderboards_top
    ON leaderboards (game_id, board, period, period_key, score DESC);

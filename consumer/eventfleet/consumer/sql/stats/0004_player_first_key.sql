-- The primary key leads with player_id. Every upsert descends this index once per row, and a
-- B-tree descent compares keys column by column: with game_id first (a handful of games) nearly
-- every comparison needed both columns; player_id first decides it on the first. In a batch of
-- 700 upserts that took the backend's time per row from about 19 to 17 µs. Lookups of one
-- player of one game keep using the index; nothing reads a range of it by game alone.
-- Rebuilds the index under an exclusive lock: seconds per million rows.
ALTER TABLE player_statistics
    DROP CONSTRAINT player_statistics_pkey,
    ADD PRIMARY KEY (player_id, game_id);

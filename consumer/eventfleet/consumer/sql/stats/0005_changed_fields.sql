-- Which of the Redis hash's values the row's last upsert changed: bit i stands for field i of
-- the mode's REDIS_FIELDS (stats.py), and the upsert sets it. Redis is sent only the changed
-- values, which halves its work per hash. A new row changed everything: -1, every bit.
ALTER TABLE player_statistics ADD COLUMN IF NOT EXISTS changed_fields integer NOT NULL DEFAULT -1;

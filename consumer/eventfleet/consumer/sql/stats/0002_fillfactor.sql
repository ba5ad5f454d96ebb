-- Leave room in each page for HOT updates: every batch rewrites the rows of its players.
-- (A new migration rather than an edit of 0001, which databases have already applied.)
ALTER TABLE player_statistics SET (fillfactor = 80);

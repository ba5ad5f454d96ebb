-- Compare the key columns byte by byte (COLLATE "C") instead of by the database's locale.
-- Ids are ASCII ([A-Za-z0-9_.@-]) and only ever looked up by equality or ordered to take row
-- locks in a fixed order, so a linguistic order buys nothing; it costs a strcoll() call per
-- comparison in every index descent of every upsert (about a seventh of the upsert's time in
-- PostgreSQL with a UTF-8 locale). Byte order is also the order Redis sorts equal scores in.
-- Same type, new collation: PostgreSQL keeps the rows and rebuilds the primary key index.
ALTER TABLE player_statistics
    ALTER COLUMN game_id TYPE text COLLATE "C",
    ALTER COLUMN player_id TYPE text COLLATE "C";

-- Dead letters can be replayed (`eventfleet dlq replay`) and expire. A replayed row keeps its
-- bytes and says when it went back, to which topic and under which event_id, so replaying the
-- same selection again sends nothing twice. Retention deletes by failed_at.
ALTER TABLE dlq_events
    ADD COLUMN IF NOT EXISTS replayed_at       timestamptz,
    ADD COLUMN IF NOT EXISTS replayed_to       text,
    ADD COLUMN IF NOT EXISTS replayed_event_id uuid;
CREATE INDEX IF NOT EXISTS dlq_events_failed_at ON dlq_events (failed_at);

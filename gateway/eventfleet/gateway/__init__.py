"""The HTTP ingestion gateway: POST /api/v1/events into Kafka."""

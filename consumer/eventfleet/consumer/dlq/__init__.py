"""`eventfleet dlq`: inspect, replay and purge the dead letters in `dlq_events`.

- `selection`: which rows a command means (group, reason, time, ids), as SQL; pure.
- `fixup`: what a replay sends for one row (a JSON merge patch and `--set` edits, then the
  contract's validation, the same the gateway applies); pure.
- `table`: the SQL against `dlq_events`.
- `replay`: the transaction that sends rows back to Kafka and marks them replayed.
- `cli`: the command line.
"""

"""The shared consumer runtime, its three modes, the event schema and the migrations."""

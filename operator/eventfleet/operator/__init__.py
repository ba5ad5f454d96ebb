"""The kopf operator that reconciles EventConsumer resources."""

"""Real services started by the tests (a KRaft Kafka broker, ...)."""

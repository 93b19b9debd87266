"""Shared pytest configuration: the real-server fixtures live in tests/servers."""

pytest_plugins = ["tests.servers.plugin", "tests.servers.opensearch", "tests.servers.kafka"]

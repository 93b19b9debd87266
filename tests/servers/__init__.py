"""Real servers for the integration tests (ValKey, dynalite, moto, kinesalite) and a
fault-injecting TCP proxy. The pytest fixtures are in ``tests.servers.plugin``; see
docs/test-servers.md.
"""

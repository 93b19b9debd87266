"""``python -m ingest``: the same as ``dsfeatures-ingest``."""

from ingest.cli import main

main()

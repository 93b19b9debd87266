"""``python -m codegen``: the same as ``dsfeatures-codegen``."""

from codegen.cli import main

main()

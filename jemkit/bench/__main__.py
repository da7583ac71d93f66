"""``python -m jemkit.bench ...`` is ``jemkit bench ...``."""
import sys

from ..cli import main

sys.exit(main(["bench", *sys.argv[1:]]))

"""``python -m jemkit.bench ...`` is ``jemkit bench ...``."""
import argparse

from ..memory import steady_host_memory
from .command import add_arguments, run_command

parser = argparse.ArgumentParser(prog="python -m jemkit.bench", description="time jemkit's SGLD sampler and JEM "
                                 "iteration against a textbook baseline")
add_arguments(parser)
steady_host_memory()
run_command(parser.parse_args())

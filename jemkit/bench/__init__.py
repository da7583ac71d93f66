"""``jemkit bench``: jemkit's SGLD sampler and JEM training iteration against a textbook baseline.

Both run on the same network, batch and steps, interleaved one call at a time (the textbook in a
process of its own, ``baseline_process.py``); medians over repetitions; seconds, images·steps/s, GFLOP/s (``torch.utils.flop_counter``) as a share of
machine ceilings measured in the same run (a large matmul and a large 1×1 convolution), peak
RSS, page faults and peak CUDA memory. ``jemkit.bench.run.run_bench(options) -> dict`` is the JSON record.

An optional subpackage, the toolkit's lab: nothing in ``jemkit`` imports it but the ``bench`` command.
"""

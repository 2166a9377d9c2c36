"""The parts of ``tools/benchmark.py``: step timing, the stock baseline, masks, the data pipeline, the report."""

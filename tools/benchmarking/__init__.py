"""The parts of ``tools/benchmark.py``, one concern each: ``timing``
(rounds, paired ratios, memory), ``baselines`` (the stock-parts step),
``masks``, ``data_pipeline`` (``--data``), ``report`` (targets, MFU, table,
JSON)."""

"""Helpers of scripts/bench_e2e.py: the two pipelines, the strategy processes, and the arithmetic.

- `analysis`: pure; joins what the simulator sent with what a strategy process received.
- `consumers`: the strategy processes (RingReader polling; a pyzmq subscriber).
- `cryptofeed_sim`: cryptofeed's Deribit feed pointed at the simulator, publishing through its ZMQ backend.
- `pipelines`: starting, pinning, measuring and stopping the processes of one trial.
"""

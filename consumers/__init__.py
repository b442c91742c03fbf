"""Ready-made consumer programs, built only on feeder's public API.

Run them from a checkout (or wherever `feeder` is installed and this directory is importable):

    python -m consumers.monitor book.BTC            live top of book; GAP/SNAPSHOT/losses shown plainly
    python -m consumers.recorder OUT book.BTC       rings -> .npy chunks; `consumers.recording.load(dir)`
    python -m consumers.latency book.BTC            per-stage latency percentiles from record timestamps
    python -m consumers.strategy                    example quoter via FeederHandle.rpc()

Every program has `--help`, `--instance`, and `--check` (validate the arguments, print the plan as JSON,
attach to nothing). Exit codes: 0 done, 1 failed at run time, 2 bad arguments.
"""

"""Ready-made consumer programs, built only on feeder's public API, installed as `feeder` subcommands:

    feeder monitor book.BTC              live top of book; GAP/SNAPSHOT/losses shown plainly
    feeder record OUT book.BTC           rings -> recordings (.npy chunks or Parquet); `feeder.recordings`
    feeder recording OUT                 verify recordings and print a summary
    feeder latency book.BTC              per-stage latency percentiles from record timestamps
    feeder example-strategy              example quoter via FeederHandle.rpc()

Every program has `--help`, `--instance`, and `--check` (validate the arguments, print the plan as JSON,
attach to nothing). Exit codes: 0 done, 1 failed at run time, 2 bad arguments. Rule kept here: these
modules import only `feeder`'s public API (and each other), like a user's own program would.
"""

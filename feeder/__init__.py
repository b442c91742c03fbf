"""feeder: a multiprocess shared-memory market-data feeder for crypto derivatives."""

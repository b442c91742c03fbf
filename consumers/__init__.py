"""Kept so that `python -m consumers.<program>` still works from a checkout (docker-compose.yml uses it).

The programs live in `feeder/consumers/` and are installed as `feeder` subcommands: `feeder monitor`,
`feeder record`, `feeder recording`, `feeder latency`, `feeder example-strategy`.
"""

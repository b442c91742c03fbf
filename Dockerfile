# One image for every feeder service of docker-compose.yml: the simulator, the feeder, the consumers, the
# mirror and the replica (the nats service uses the official nats image).
# Rings are private to their user (mode 0600), so every service runs as the same non-root user.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY feeder ./feeder
# the nats extra: the mirror and replica services bridge rings over NATS
RUN pip install '.[nats]'

# consumers/ is not part of the wheel: `python -m consumers.<name>` runs it from the working directory
COPY consumers ./consumers

# FEEDER_RUN_DIR (control socket, key): a volume shared by the feeder and the strategy, owned by the user
RUN useradd --uid 10001 --create-home feeder && mkdir -p /run/feeder && chown feeder /run/feeder
USER feeder

# The chatops bot. Build from the repository root:
#   docker compose -f compose/chatops/compose.yaml build
# Runs as a non-root user; the health check asks the bot's own /healthz (database reachable).

# ---- build: a virtualenv with the pinned dependencies ----------------------------------
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt README.md ./
COPY bot ./bot
COPY commands ./commands
COPY llm ./llm
COPY infra ./infra
# Editable install: the code stays in /app next to migrations/, chatops.yaml and compose/,
# which the bot finds relative to its own package (infra/config.py PROJECT_ROOT).
RUN /opt/venv/bin/pip install -c constraints.txt -e .

# ---- runtime ------------------------------------------------------------------------------
FROM python:3.11.11-slim-bookworm
# ssh: Docker hosts reached as ssh://user@host; git: deploys of a given ref of compose/.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-client git \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /home/chatops --shell /usr/sbin/nologin chatops \
 && install -d -o chatops -g chatops -m 0750 /var/lib/chatops/archive /var/lib/chatops/state
# The root file system is read-only when it runs: /tmp (a tmpfs) holds each request's work copies, and
# CHATOPS_DATA_DIR (a volume) the fingerprint key of recorded revisions. Nothing is written to $HOME.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    CHATOPS_METRICS_PORT=0.0.0.0:9464 \
    CHATOPS_LOG_FORMAT=json \
    CHATOPS_DATA_DIR=/var/lib/chatops/state
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY migrations /app/migrations
COPY alembic.ini /app/alembic.ini
COPY compose /app/compose
COPY chatops.yaml /app/chatops.yaml
WORKDIR /app
USER chatops
# Metrics and health. Publish it on the host's loopback only (see compose/chatops/compose.yaml).
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["chatops"]
CMD ["serve"]

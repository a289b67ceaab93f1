# PulsarDB: one image for every role; the command chooses it.
#   docker run -p 8080:8080 -v pulsar-data:/var/lib/pulsardb pulsardb            # standalone
#   docker run pulsardb node --node-id n0 --peers ...                            # storage node
#   docker run pulsardb coordinator --nodes n0:7100,...                          # coordinator
# Build: docker build -t pulsardb:0.1.0 .   (docs/operations.md)

# ---- build stage: a wheel of the project, installed with every dependency pinned ----------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# .dockerignore admits only the sources, pyproject.toml, README.md and deploy/docker/.
COPY . /src
RUN python -m venv /opt/pulsardb \
 && /opt/pulsardb/bin/pip wheel --no-deps --wheel-dir /tmp/dist /src \
 && /opt/pulsardb/bin/pip install -c /src/deploy/docker/constraints.txt \
        /tmp/dist/pulsardb-*.whl \
 && /opt/pulsardb/bin/pip uninstall --yes pip \
 && install -m 0755 /src/deploy/docker/healthcheck.py /opt/pulsardb/bin/pulsar-healthcheck

# ---- runtime stage ---------------------------------------------------------------------------
FROM python:3.11-slim-bookworm
# tini as PID 1 forwards SIGTERM/SIGINT to pulsar and reaps zombies (`pulsar local` has children);
# Kubernetes has no `docker run --init`.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 pulsar \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/pulsardb \
        --shell /usr/sbin/nologin pulsar \
 && mkdir -p /var/lib/pulsardb \
 && chown 10001:10001 /var/lib/pulsardb
COPY --from=build /opt/pulsardb /opt/pulsardb
ENV PATH=/opt/pulsardb/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PULSAR_DATA_DIR=/var/lib/pulsardb
USER 10001:10001
WORKDIR /var/lib/pulsardb
VOLUME ["/var/lib/pulsardb"]
# 8080 coordinator/standalone HTTP, 7100 node API, 7200+ Raft (7200 metadata, 7201+ shard groups).
EXPOSE 8080 7100 7200-7232
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/pulsardb/bin/pulsar-healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "pulsar"]
CMD ["standalone", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/var/lib/pulsardb"]

# syntax=docker/dockerfile:1
# The takedown image; compose.yaml runs it as `migrate`, `worker` and `web`.
# The dependencies come from requirements.lock, every one pinned and checked against its
# hashes, in a layer of their own: a change to the code rebuilds only the layers after it.
# It runs as an unprivileged user (uid 10001) with TAKEDOWN_HOME on a volume.
# After a change to pyproject.toml's dependencies, regenerate the lock (README § Running on
# PostgreSQL and Redis with several workers).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/takedown
# The dependencies, with the build tools (setuptools, wheel) the lock pins too; the cache
# mount keeps downloaded wheels from one build to the next.
COPY requirements.lock /tmp/requirements.lock
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/takedown/bin/pip install --require-hashes --no-deps -r /tmp/requirements.lock
# The package itself, built with the locked setuptools (nothing downloaded); `pip check`
# fails the build if the lock misses a dependency that pyproject.toml declares.
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY templates templates
COPY workflows workflows
RUN /opt/takedown/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
    && /opt/takedown/bin/pip check

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 takedown \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/takedown \
        --shell /usr/sbin/nologin takedown \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/takedown
COPY --from=build /opt/takedown /opt/takedown
ENV PATH=/opt/takedown/bin:$PATH \
    TAKEDOWN_HOME=/var/lib/takedown \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The state directory (SQLite and an embedded Redis when no database or Redis is
# configured; nothing of weight with PostgreSQL and Redis): kept out of the container.
VOLUME ["/var/lib/takedown"]
WORKDIR /var/lib/takedown
USER 10001:10001
# 8000: the desk, its API, /healthz, /readyz, /metrics; 9464: a worker's TAKEDOWN_METRICS_PORT.
EXPOSE 8000 9464
# The desk's liveness (the default command); compose.yaml sets each service's own check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["takedown"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

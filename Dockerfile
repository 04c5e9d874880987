# syntax=docker/dockerfile:1
# The ihx node image. Two stages: the builder installs ihx and its dependencies into a virtual
# environment; the final image gets only that environment on a fresh python:3.11-slim — no
# compilers, no pip, no source tree — and runs as uid 10001 with a read-only root filesystem
# (the Helm chart mounts /tmp as the only writable path).
#
#   docker build -t ihx:0.1.0 .
#   docker run --rm ihx:0.1.0 --help
#
# Reproducible: the base image is pinned by digest, and every Python dependency (and the build
# backend) comes from requirements.lock with its hashes (pip refuses anything else). Regenerate
# the lock after changing dependencies in pyproject.toml (CONTRIBUTING.md, "Packaging"):
#   pip-compile --generate-hashes --allow-unsafe --build-deps-for wheel --strip-extras \
#       --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml
# Move the base to a newer patch release by its digest (`docker buildx imagetools inspect
# python:3.11-slim-bookworm`), or override it: --build-arg PYTHON_IMAGE=…

# Both stages must use the same base: the venv refers to the interpreter by its path.
ARG PYTHON_IMAGE=docker.io/library/python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/ihx
WORKDIR /src
# The locked dependencies first, in a layer of their own: a source change does not reinstall
# them. Every dependency ships manylinux wheels for CPython 3.11 (psycopg[binary], grpcio,
# cryptography, maxminddb, ada-url), so nothing is compiled here either.
COPY requirements.lock ./
RUN /opt/ihx/bin/pip install --require-hashes --no-deps -r requirements.lock
# .dockerignore keeps tests, caches, local keys, databases and the VCS out of this copy.
COPY . .
# ihx itself, built with the locked setuptools (no build isolation: nothing unlocked is
# fetched) and without dependencies: `pip check` proves the lock satisfies it. pip byte-compiles
# the installed modules, so the read-only image never needs to write .pyc files.
RUN /opt/ihx/bin/pip install --no-deps --no-build-isolation . \
 && /opt/ihx/bin/pip check \
 && /opt/ihx/bin/ihx --help > /dev/null \
 && /opt/ihx/bin/pip uninstall --yes pip

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ihx" \
      org.opencontainers.image.description="ihx node: federated, signed exchange of CSAM-URL reports between hotlines" \
      org.opencontainers.image.licenses="Apache-2.0"
# NUMBA_CACHE_DIR: the PDQ index's compiled search (exchange/pdq/probe.py) is cached on the
# one writable path, so only a pod's first start compiles it (seconds), not every process.
ENV PATH=/opt/ihx/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache
RUN groupadd --system --gid 10001 ihx \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin ihx
COPY --from=builder /opt/ihx /opt/ihx
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
# 7443: gRPC between nodes (mutual TLS); 9464: Prometheus metrics (HTTP /metrics).
# Health checks are Kubernetes gRPC probes (see the Helm chart), so no HEALTHCHECK.
EXPOSE 7443 9464
ENTRYPOINT ["ihx"]
CMD ["node", "run", "--config", "/etc/ihx/config/node.toml"]

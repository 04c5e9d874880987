# syntax=docker/dockerfile:1
# The ihx node image. Two stages: the builder installs ihx and its dependencies into a virtual
# environment; the final image gets only that environment on a fresh python:3.11-slim — no
# compilers, no pip, no source tree — and runs as uid 10001 with a read-only root filesystem
# (the Helm chart mounts /tmp as the only writable path).
#
#   docker build -t ihx:0.1.0 .
#   docker run --rm ihx:0.1.0 --help

# Both stages must use the same base: the venv refers to the interpreter by its path.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/ihx
WORKDIR /src
# .dockerignore keeps tests, caches, local keys, databases and the VCS out of this copy.
COPY . .
# Every dependency ships manylinux wheels for CPython 3.11 (psycopg[binary], grpcio,
# cryptography, maxminddb, ada-url), so nothing is compiled here either. pip byte-compiles the
# installed modules, so the read-only image never needs to write .pyc files.
RUN /opt/ihx/bin/pip install --upgrade pip \
 && /opt/ihx/bin/pip install . \
 && /opt/ihx/bin/ihx --help > /dev/null \
 && /opt/ihx/bin/pip uninstall --yes pip

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ihx" \
      org.opencontainers.image.description="ihx node: federated, signed exchange of CSAM-URL reports between hotlines" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/ihx/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
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

# Local stand-in for prom/node-exporter (scripts/test-compose.sh; no registry here): Debian's
# node exporter as the entrypoint, plus wget for the healthcheck docker-compose.yml gives.
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus-node-exporter wget \
    && rm -rf /var/lib/apt/lists/*
USER nobody
EXPOSE 9100
ENTRYPOINT ["/usr/bin/prometheus-node-exporter"]

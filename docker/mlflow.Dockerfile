# MLflow tracking server + model registry for docker-compose.yml: the version the tests pin
# (scripts/setup-mlflow.sh) plus the PostgreSQL driver its tracking store needs (psycopg 3,
# SQLAlchemy 2.1's default for postgresql://; the upstream image has none). Artifacts are
# served by the server itself (--serve-artifacts) from a volume.
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/mlflow \
    && /opt/mlflow/bin/pip install --no-cache-dir --disable-pip-version-check \
        mlflow==3.17.2 "psycopg[binary]==3.3.9" \
    && useradd --system --uid 10002 --user-group --home-dir /mlflow --create-home mlflow \
    && mkdir -p /mlflow/artifacts && chown -R mlflow:mlflow /mlflow
ENV PATH=/opt/mlflow/bin:$PATH \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true
USER mlflow
WORKDIR /mlflow
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=5 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:5000/health || exit 1
# docker-compose.yml gives the command (the tracking store's URL has the database password).
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]

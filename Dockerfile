# Image for the registry, workers and traffic generator in docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams streams
COPY agents agents
COPY tables tables
COPY registry registry
COPY schemas schemas
COPY runbooks runbooks
RUN pip install --no-cache-dir -e .
ENV FSTREAMS_DATA_DIR=/data
VOLUME /data
ENTRYPOINT ["fstreams"]

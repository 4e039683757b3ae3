# The hub as a container image. Config at /config/hub.yaml, state in /state.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY bridges ./bridges
COPY device_profiles ./device_profiles
RUN pip install --no-cache-dir ".[speed]" && useradd --system --home /state hub && mkdir -p /state && chown hub /state
USER hub
VOLUME ["/state"]
EXPOSE 1883
ENTRYPOINT ["hub"]
CMD ["run", "-c", "/config/hub.yaml"]

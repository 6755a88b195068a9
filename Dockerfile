# syntax=docker/dockerfile:1
# Two stages: install the locked runtime dependencies (requirements/runtime.lock,
# exact versions checked against their hashes) and the package without deps into
# a virtual environment, then copy it into a slim runtime image that runs as an
# unprivileged user. Kept in step with the Makefile: the same lock, the same
# package, the same `gateway serve` entry point.

FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/gateway
COPY requirements/runtime.lock requirements/runtime.lock
RUN /opt/gateway/bin/python -m pip install --no-cache-dir --require-hashes -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY consent ./consent
COPY mappings ./mappings
COPY conformance ./conformance
RUN /opt/gateway/bin/python -m pip install --no-cache-dir --no-deps .

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_DATABASE_URL=sqlite:////var/lib/gateway/gateway.db \
    GATEWAY_AUDIT_KEY=/var/lib/gateway/audit-key.pem \
    GATEWAY_WORKERS=2 \
    PATH=/opt/gateway/bin:$PATH
RUN groupadd --system gateway \
 && useradd --system --gid gateway --home-dir /var/lib/gateway --shell /usr/sbin/nologin gateway \
 && mkdir -p /var/lib/gateway && chown gateway:gateway /var/lib/gateway
COPY --from=build /opt/gateway /opt/gateway
USER gateway
WORKDIR /var/lib/gateway
VOLUME ["/var/lib/gateway"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2).status != 200)"]
ENTRYPOINT ["gateway", "serve"]
CMD ["--host", "0.0.0.0", "--port", "8080"]

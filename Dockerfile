# releasegate: the decision service with a managed OPA, state in /var/lib/releasegate.
# The OPA binary comes from the official static image, pinned to the version the tests use
# (scripts/install-opa.sh); the committed signed policy bundle is verified at start.
ARG OPA_VERSION=1.22.3

FROM openpolicyagent/opa:${OPA_VERSION}-static AS opa

FROM python:3.11-slim AS build
RUN python -m venv /opt/venv
COPY pyproject.toml README.md /src/
COPY engine /src/engine
RUN /opt/venv/bin/pip install --no-cache-dir /src

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/releasegate --create-home releasegate
COPY --from=opa /opa /usr/local/bin/opa
COPY --from=build /opt/venv /opt/venv
COPY bundles /opt/releasegate/bundles
ENV PATH=/opt/venv/bin:$PATH \
    RELEASEGATE_OPA=/usr/local/bin/opa \
    RELEASEGATE_STATE_DIR=/var/lib/releasegate \
    RELEASEGATE_BUNDLE=/opt/releasegate/bundles/releasegate.tar.gz \
    RELEASEGATE_BUNDLE_PUBLIC_KEY=/opt/releasegate/bundles/releasegate.pub.pem
USER 10001
EXPOSE 8080
# Listening beyond loopback requires TLS: mount a certificate and key and set
# RELEASEGATE_TLS_CERT / RELEASEGATE_TLS_KEY (see README "Running the service").
ENTRYPOINT ["releasegate", "serve"]
CMD ["--host", "0.0.0.0", "--port", "8080"]

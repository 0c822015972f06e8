# syntax=docker/dockerfile:1.7
# One Dockerfile, one image per service (ADR 0018): docker build --build-arg SERVICE=orders .
# SERVICE is one of orders, payments, shipping, notifier, monitor, sandbox. The image holds that
# service, libs/common and their locked dependencies; never the dev tools, the embedded
# Kafka/PostgreSQL (libs/devstack), a JDK, a compiler or the tests.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS builder
ARG SERVICE
COPY --from=uv /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=0 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# The lock and every workspace member's metadata first: the dependency layer is rebuilt only
# when they change, not on every source edit.
COPY uv.lock pyproject.toml ./
COPY libs/common/pyproject.toml libs/common/
COPY libs/devstack/pyproject.toml libs/devstack/
COPY libs/cli/pyproject.toml libs/cli/
COPY services/orders/pyproject.toml services/orders/
COPY services/payments/pyproject.toml services/payments/
COPY services/shipping/pyproject.toml services/shipping/
COPY services/notifier/pyproject.toml services/notifier/
COPY services/monitor/pyproject.toml services/monitor/
COPY services/sandbox/pyproject.toml services/sandbox/
RUN --mount=type=cache,target=/root/.cache/uv \
    test -n "${SERVICE}" && \
    uv sync --locked --no-dev --no-install-workspace --package "waybill-${SERVICE}"
COPY libs/common libs/common
COPY services/${SERVICE} services/${SERVICE}
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package "waybill-${SERVICE}" && \
    printf '#!/bin/sh\nexec python -m waybill.%s "$@"\n' "${SERVICE}" > /app/.venv/bin/waybill-service && \
    chmod 0755 /app/.venv/bin/waybill-service

FROM ${PYTHON_IMAGE}
ARG SERVICE
LABEL org.opencontainers.image.title="waybill-${SERVICE}"
RUN groupadd --system --gid 10001 waybill && \
    useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin waybill
COPY --from=builder --chown=10001:10001 /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WAYBILL_HOST=0.0.0.0
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["waybill-service"]

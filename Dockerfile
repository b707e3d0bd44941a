# The edgefleet image: one image for every component (operator, origin, edge, balancer and the managed
# Redis of the purge bus); each pod runs its own subcommand (`edgefleet operator`, `edgefleet edge`, ...).
# Build from the repository root with `make images`, or by hand:
#   docker build -t ghcr.io/edgefleet/edgefleet:0.1.0 .                    # base: debian:bookworm-slim
#   docker build --build-arg BASE_IMAGE=edgefleet-base:bookworm -t ... .   # base made by hack/base-image.sh
# With wheels in build/wheels (hack/wheels.sh) the build needs no network: Debian packages come with the
# base and Python packages install with --no-index. Runs as a non-root user with a read-only root
# filesystem: pods mount emptyDirs on /tmp and /var/cache/edgefleet.

ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS base
# A base made by hack/base-image.sh already has these; the public Debian image installs them here.
# hadolint ignore=DL3008
RUN if ! command -v python3 haproxy redis-server >/dev/null || ! python3 -c 'import ensurepip' 2>/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv haproxy redis-server \
        && rm -rf /var/lib/apt/lists/*; \
    fi

FROM base AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SOURCE_DATE_EPOCH=315532800
WORKDIR /src
COPY constraints.txt ./constraints.txt
COPY build/wheels/ /wheels/
# Dependencies first (a layer that changes only with constraints.txt), then edgefleet itself.
RUN set -eu; python3 -m venv /opt/edgefleet; \
    if ls /wheels/*.whl >/dev/null 2>&1; then set -- --no-index --find-links /wheels; else set --; fi; \
    /opt/edgefleet/bin/pip install "$@" --requirement constraints.txt "wheel<1"
COPY pyproject.toml README.md ./
COPY edgefleet/ edgefleet/
COPY operator/ operator/
COPY edge_image/ edge_image/
COPY origin_image/ origin_image/
RUN /opt/edgefleet/bin/pip install --no-index --no-deps --no-build-isolation . \
    && /opt/edgefleet/bin/pip uninstall -y wheel \
    && /opt/edgefleet/bin/edgefleet --help >/dev/null

FROM base
ENV PATH=/opt/edgefleet/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 edgefleet \
    && useradd --system --uid 10001 --gid edgefleet --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin edgefleet \
    && mkdir -p /var/cache/edgefleet \
    && chown 10001:10001 /var/cache/edgefleet
COPY --from=build /opt/edgefleet /opt/edgefleet
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 8081 9090
ENTRYPOINT ["edgefleet"]
CMD ["operator"]

# syntax=docker/dockerfile:1
# The two images: the bridge, and the agent stub (the reference agent). Each is the same
# release binary the workspace builds and tests (symbols stripped by the release profile), on
# a distroless runtime (glibc, CA certificates, no shell), as a non-root numeric user.
# Build from the repository root, one target per image:
#   podman build --target bridge -t bridge:dev .
#   podman build --target agent-stub -t agent-stub:dev .
# (without --target, the last stage: the bridge).
#
# Base images are fully qualified, so builders without a default registry (podman, buildah,
# kaniko with a strict registries.conf) find them. Pin them by digest for a reproducible
# build: resolve the digests you trust (`crane digest IMAGE`, or
# `docker buildx imagetools inspect IMAGE`) and pass them, e.g.
#   --build-arg BUILD_IMAGE=docker.io/library/rust:1.95-slim-bookworm@sha256:<digest>
#   --build-arg RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:<digest>
# The build stage is Debian 12 (bookworm) like the runtime: the binaries need that glibc.
ARG BUILD_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# Both binaries in one cargo build: they share nearly every dependency, so building the
# second costs little, and the cache serves both images.
FROM ${BUILD_IMAGE} AS build
# make: the bridge's allocator (jemalloc) builds from C with it; the slim image has gcc only.
RUN apt-get update && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=agent-bridge-target \
    cargo build --release --locked -p bridge -p agent-stub \
 && cp target/release/bridge target/release/agent-stub /usr/local/bin/

FROM ${RUNTIME_IMAGE} AS agent-stub
COPY --from=build /usr/local/bin/agent-stub /usr/local/bin/agent-stub
USER 65532:65532
ENV AGENT_STUB_LISTEN=0.0.0.0:50051
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/agent-stub"]

FROM ${RUNTIME_IMAGE} AS bridge
COPY --from=build /usr/local/bin/bridge /usr/local/bin/bridge
USER 65532:65532
ENV BRIDGE_LISTEN=0.0.0.0:8080
# Probes and /metrics, apart from the API (the chart's `admin` port).
ENV BRIDGE_ADMIN_LISTEN=0.0.0.0:9090
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/bridge"]

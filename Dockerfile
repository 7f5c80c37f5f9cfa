# The `sluice` image: one binary for the proxy (`sluice proxy`), the init
# container (`sluice init`, which needs iptables) and the admission webhook
# (`sluice inject --serve`). Build from the repository's root:
#
#   docker build -t ghcr.io/sluice-mesh/sluice:0.1.0 .
#
# The tag is the one `sluice inject` and deploy/kubernetes/ name by default
# (the version of the `sluice` crate).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sluice \
    && install -m 0755 target/release/sluice /usr/local/bin/sluice

FROM debian:bookworm-slim
# iptables for `sluice init` (the init container runs it as root with
# NET_ADMIN and NET_RAW); ca-certificates for policies pulled over HTTPS.
# Versions are not pinned: the image takes bookworm's security updates when
# it is rebuilt.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/sluice /usr/local/bin/sluice
# The proxy's uid and gid (inject's PROXY_UID); the init container sets
# runAsUser 0 itself.
USER 2102:2102
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["--help"]

# syntax=docker/dockerfile:1
# One image for the action and the relay: a static `hookgate` binary, the CA bundle, nothing else.
# The build stage runs the same command as `.ci/run` (scripts/build-static.sh), so the build is
# exercised on every CI run even where no container engine exists.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN ./scripts/build-static.sh /out/hookgate

FROM debian:bookworm-slim AS certificates
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

FROM scratch
COPY --from=certificates /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/hookgate /hookgate
# The relay keeps its SQLite file here when run as `docker run -v hookgate-data:/data IMAGE relay`.
VOLUME ["/data"]
ENV HOOKGATE_STORE=sqlite:/data/hookgate-relay.sqlite \
    HOOKGATE_LISTEN=0.0.0.0:8080
EXPOSE 8080
# Meaningful for the relay; `docker run` of the action overrides it with the runner's own checks.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s CMD ["/hookgate", "healthcheck"]
# GitHub runs container actions as root in /github/workspace, with the runner's files mounted;
# a USER here would stop the action writing $GITHUB_OUTPUT. Run the relay with `--user 65532`.
ENTRYPOINT ["/hookgate"]
CMD ["--help"]

# syntax=docker/dockerfile:1
#
# Static, non-root image of SmartCloudOps.
#
#   docker build -t smartcloudops --build-arg VERSION=1.2.3 --build-arg REVISION=$(git rev-parse HEAD) .
#   docker run -p 5000:5000 -v smartcloudops-data:/data smartcloudops
#
# SQLite is pure Go (modernc.org/sqlite), so CGO_ENABLED=0 gives a static binary
# that runs on distroless/static: no shell, no libc, CA certificates and
# /etc/passwd with the nonroot user (65532) included.
#
# There is no HEALTHCHECK: distroless has no shell or curl to run one. Probes
# come from the orchestrator (Kubernetes livenessProbe on /livez, readinessProbe
# on /readyz; see deploy/kubernetes) or from compose's healthcheck of a sidecar.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Empty VERSION/REVISION leave the binary's own fallback (build info).
ARG VERSION=
ARG REVISION=
ENV CGO_ENABLED=0
RUN go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/smartcloudops ./cmd/smartcloudops \
 && mkdir -p /out/data/logs

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=
ARG REVISION=
LABEL org.opencontainers.image.title="smartcloudops" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/smartcloudops /usr/local/bin/smartcloudops
# /data holds the SQLite file and the log directory; owned by nonroot so a
# fresh named volume inherits a writable directory.
COPY --from=build --chown=65532:65532 /out/data /data
ENV SMARTCLOUDOPS_ADDR=:5000 \
    DATABASE_URL=sqlite:////data/smartcloudops.db \
    LOG_DIR=/data/logs
USER 65532:65532
VOLUME ["/data"]
WORKDIR /data
EXPOSE 5000
ENTRYPOINT ["/usr/local/bin/smartcloudops"]
CMD ["serve"]

# syntax=docker/dockerfile:1
# mcsa-controller, the in-cluster binary, for people with Docker. Releases build the same image
# without Docker (`make image`, see docs/install.md), which the tests check; this one matches it
# in what manifests/controller/deployment.yaml relies on: the binary /mcsa-controller is the
# entrypoint, the user is 65532 (distroless' nonroot), the ports are 8080, 8081 and 9443.
#
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=v0.1.0 \
#     -t ghcr.io/kubectl-mcsa/mcsa-controller:v0.1.0 .

# Cross-compile on the build machine's platform: Go needs no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
      -ldflags "-s -w -X github.com/kubectl-mcsa/kubectl-mcsa/incluster/version.Version=${VERSION}" \
      -o /out/mcsa-controller ./incluster/cmd/mcsa-controller

# Static binary, no shell, no package manager.
FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/mcsa-controller /mcsa-controller
USER 65532:65532
EXPOSE 8080 8081 9443
ENTRYPOINT ["/mcsa-controller"]

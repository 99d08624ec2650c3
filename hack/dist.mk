# Release artifacts, built offline with Go alone (no Docker, no goreleaser); see docs/install.md.
# Included by the Makefile, after its GO and VERSION.
#
#   make dist VERSION=v0.1.0            archives for every platform and their checksums, in dist/
#   make krew-manifest VERSION=v0.1.0   the above, then krew-index/plugins/mcsa.yaml from them
#   make image VERSION=v0.1.0           dist/mcsa-controller_v0.1.0.oci.tar (linux/amd64, arm64)
#   make krew-test                      hack/dist's tests alone, krew and image included (`make test`
#                                       runs them too)

# The Makefile's VERSION: given (make dist VERSION=v0.1.0), else the latest v* tag as git
# describes it (v0.1.0, or v0.1.0-3-gabc1234 past it), else v0.1.0-dev. krew needs it semantic.
RELEASE_VERSION ?= $(VERSION)
DIST ?= $(CURDIR)/dist
# Space- or comma-separated os/arch pairs; empty for all six (linux, darwin, windows × amd64, arm64).
DIST_PLATFORMS ?=
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
# Archive entries carry the commit's time, so that a commit always gives the same archives.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
export SOURCE_DATE_EPOCH

comma := ,
DIST_TOOL = $(GO) -C hack/dist run .

.PHONY: dist krew-manifest image krew-test

## dist: release archives (plugin, completion shim, LICENSE) for every platform, and checksums, in dist/
dist:
	$(DIST_TOOL) build -src $(CURDIR) -version $(RELEASE_VERSION) -out $(DIST) \
	  $(if $(strip $(DIST_PLATFORMS)),-platforms $(subst $(eval) ,$(comma),$(strip $(DIST_PLATFORMS))))

## krew-manifest: krew-index/plugins/mcsa.yaml from dist/'s archives (release URLs, their sha256)
krew-manifest: dist
	$(DIST_TOOL) krew -version $(RELEASE_VERSION) -dist $(DIST) -out $(CURDIR)/krew-index/plugins/mcsa.yaml

## image: the mcsa-controller image (linux/amd64, linux/arm64) as an OCI archive in dist/
image:
	$(DIST_TOOL) image -src $(CURDIR) -version $(RELEASE_VERSION) -platforms $(IMAGE_PLATFORMS) \
	  -out $(DIST)/mcsa-controller_$(RELEASE_VERSION).oci.tar

## krew-test: install the plugin with krew and run it through kubectl; check the controller image
krew-test:
	$(GO) -C hack/dist test -count=1 -timeout 20m $(TESTFLAGS) ./...

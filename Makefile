# OnAir firmware. `make run` and `make test` install what they need.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin

GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/onair/onair/internal/daemon.Version=$(VERSION)
DATA_DIR ?= $(CURDIR)/data
LISTEN ?= :8080

# Debian packages: to build and run the daemon, and what the tests use on top.
BUILD_DEBS := gcc pkg-config libx264-dev libopus-dev
TEST_DEBS := $(BUILD_DEBS) ffmpeg qemu-user genimage mtools dosfstools e2fsprogs fdisk \
	linux-libc-dev gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf

TIMINGS := $(CURDIR)/.test-timings
export TIMINGS

.PHONY: all build run test deps-build deps-test check-go vet test-go test-race test-qemu test-buildroot clean

all: build

check-go:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is needed: install it to /usr/local/go (https://go.dev/doc/install)"; exit 1; }

deps-build: check-go
	@scripts/apt-ensure.sh $(BUILD_DEBS)

deps-test: check-go
	@scripts/apt-ensure.sh $(TEST_DEBS)

build: deps-build
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/onaird ./cmd/onaird
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/onair-bundle ./cmd/onair-bundle

# Runs the daemon on the built-in test sources (moving pattern, tone), with
# its data (admin token, settings) in ./data.
run: build
	@mkdir -p $(DATA_DIR)
	bin/onaird --config config/onair.yaml --data-dir $(DATA_DIR) --listen $(LISTEN)

test:
	@rm -f $(TIMINGS)
	@scripts/timed.sh "install packages" $(MAKE) --no-print-directory deps-test
	@scripts/timed.sh "vet" $(MAKE) --no-print-directory vet
	@scripts/timed.sh "go test (native)" $(MAKE) --no-print-directory test-go
	@scripts/timed.sh "go test -race" $(MAKE) --no-print-directory test-race
	@scripts/timed.sh "go test arm64+arm (qemu)" $(MAKE) --no-print-directory test-qemu
	@echo; echo "make test: time of each part"; cat $(TIMINGS)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) vet ./...
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) vet ./...

test-go:
	$(GO) test -count=1 -timeout 20m ./...

# The packages whose concurrency matters most, under the race detector.
test-race:
	$(GO) test -count=1 -race -timeout 10m ./broadcast/... ./whep/... ./web/... ./pipeline/...

# Pure-Go packages built for the Pi's architectures and run under qemu-user
# (no binfmt_misc here, so go test -exec names the emulator). Unit tests only.
QEMU_PKGS = $$($(GO) list ./... | grep -v -e /buildroot)
test-qemu:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) test -count=1 -short -timeout 15m -exec qemu-aarch64 $(QEMU_PKGS)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) test -count=1 -short -timeout 15m -exec qemu-arm $(QEMU_PKGS)

clean:
	rm -rf bin $(TIMINGS)

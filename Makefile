# OnAir firmware. `make run` and `make test` install what they need.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin

GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/onair/onair/internal/daemon.Version=$(VERSION)
# "dynamic": pion/mediadevices' Opus links libopus through pkg-config, as in
# the Buildroot image, instead of its bundled static library.
TAGS := dynamic
DATA_DIR ?= $(CURDIR)/data
LISTEN ?= :8080

# Debian packages: to build and run the daemon, and what the tests use on top.
BUILD_DEBS := gcc pkg-config libx264-dev libopus-dev
TEST_DEBS := $(BUILD_DEBS) nftables ffmpeg qemu-user genimage mtools dosfstools e2fsprogs fdisk busybox shellcheck edid-decode \
	chromium curl mosquitto mosquitto-clients \
	linux-libc-dev gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf
# The Pi's architectures: cross compilers and the target's libraries (multiarch).
CROSS_DEBS := gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libx264-dev:arm64 libx264-dev:armhf \
	libopus-dev:arm64 libopus-dev:armhf libasound2-dev:arm64 libasound2-dev:armhf

TIMINGS := $(CURDIR)/.test-timings
export TIMINGS

.PHONY: all build run test deps-build deps-test deps-cross check-go vet test-go test-race test-qemu test-fuzz \
	build-arm64 build-armv7 check-package-build image clean test-vm

all: build

check-go:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is needed: install it to /usr/local/go (https://go.dev/doc/install)"; exit 1; }

deps-build: check-go
	@scripts/apt-ensure.sh $(BUILD_DEBS)

deps-test: check-go
	@scripts/apt-ensure.sh $(TEST_DEBS)

deps-cross: check-go
	@for arch in arm64 armhf; do dpkg --print-foreign-architectures | grep -qx $$arch || \
		{ echo "adding Debian architecture $$arch"; $$( [ $$(id -u) -eq 0 ] || echo sudo ) dpkg --add-architecture $$arch; }; done
	@scripts/apt-ensure.sh $(CROSS_DEBS)

build: deps-build
	$(GO) build -trimpath -tags $(TAGS) -ldflags '$(LDFLAGS)' -o bin/onaird ./cmd/onaird
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/onair-bundle ./cmd/onair-bundle

# The daemon for the Pi: arm64 (Pi 4, Pi 5, Zero 2 W on a 64-bit OS) and
# armv7 (32-bit OS), with cgo through Debian's cross compilers.
build-arm64: deps-cross
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc \
	PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
	$(GO) build -trimpath -tags $(TAGS) -ldflags '$(LDFLAGS)' -o bin/arm64/onaird ./cmd/onaird
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/arm64/onair-bundle ./cmd/onair-bundle
	@file bin/arm64/onaird

build-armv7: deps-cross
	CGO_ENABLED=1 GOOS=linux GOARCH=arm GOARM=7 CC=arm-linux-gnueabihf-gcc \
	PKG_CONFIG_LIBDIR=/usr/lib/arm-linux-gnueabihf/pkgconfig:/usr/share/pkgconfig \
	$(GO) build -trimpath -tags $(TAGS) -ldflags '$(LDFLAGS)' -o bin/armv7/onaird ./cmd/onaird
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/armv7/onair-bundle ./cmd/onair-bundle
	@file bin/armv7/onaird

# The Buildroot package's build command with the flags Buildroot uses.
check-package-build: deps-cross
	ONAIR_CHECK_DAEMON=1 buildroot/check-package-build.sh $(VERSION)

# The SD-card image and OTA bundle for BOARD (pi4, pi5, zero2w). Needs network
# and hours: not part of `make test`. See buildroot/README.md.
BOARD ?= pi4
image:
	buildroot/image.sh $(BOARD)

# Runs the daemon on the built-in test sources (moving pattern, tone), with
# its data (admin token, settings) in ./data.
run: build
	@mkdir -p $(DATA_DIR)
	bin/onaird --config config/onair.yaml --data-dir $(DATA_DIR) --listen $(LISTEN) --keys

test:
	@rm -f $(TIMINGS)
	@scripts/timed.sh "install packages" $(MAKE) --no-print-directory deps-test
	@scripts/timed.sh "vet" $(MAKE) --no-print-directory vet
	@scripts/timed.sh "go test (native)" $(MAKE) --no-print-directory test-go
	@scripts/timed.sh "go test -race" $(MAKE) --no-print-directory test-race
	@scripts/timed.sh "fuzz (fixed count)" $(MAKE) --no-print-directory test-fuzz
	@scripts/timed.sh "browser (chromium)" test/browser/run.sh
	@scripts/timed.sh "go test arm64+arm (qemu)" $(MAKE) --no-print-directory test-qemu
	@scripts/timed.sh "VM drivers (qemu-system)" $(MAKE) --no-print-directory test-vm
	@scripts/timed.sh "build arm64 + armv7" $(MAKE) --no-print-directory build-arm64 build-armv7
	@scripts/timed.sh "buildroot package build" $(MAKE) --no-print-directory check-package-build
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
	$(GO) test -count=1 -race -timeout 10m ./broadcast/... ./whep/... ./web/... ./pipeline/... ./gpio/... ./audience/... ./announce/... ./replay/... ./device/mjpeg/...

# Every parser of outside input, fuzzed for a fixed number of inputs beyond
# its seed corpus (the corpus itself runs in every go test).
FUZZ_COUNT ?= 3000x
FUZZ_TARGETS := ./ota/bundle:FuzzOpen ./ota/bundle:FuzzDecodeManifest ./ota/tryboot:FuzzParse \
	./config:FuzzParse ./media/h264:FuzzInspect ./fleet:FuzzParseCommand ./gpio:FuzzParsePin \
	./audience:FuzzCheck ./audience:FuzzCleanText ./replay:FuzzScan ./replay:FuzzParseSPS ./replay:FuzzParseRange \
	./ota/fat:FuzzLookup ./ota/cmdline:FuzzRootValue ./device/mjpeg:FuzzDecode \
	./device/v4l2:FuzzCheckEDID
test-fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn $(FUZZ_COUNT)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZ_COUNT) -fuzzminimizetime 0 $$pkg >/dev/null || \
		{ $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZ_COUNT) $$pkg; exit 1; }; done

# Pure-Go packages built for the Pi's architectures and run under qemu-user
# (no binfmt_misc here, so go test -exec names the emulator). Unit tests only.
QEMU_PKGS = $$($(GO) list ./... | grep -v -e /buildroot)
test-qemu:
	ONAIR_TEST_EMULATOR=qemu-aarch64 CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) test -count=1 -short -timeout 15m -exec qemu-aarch64 $(QEMU_PKGS)
	ONAIR_TEST_EMULATOR=qemu-arm CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) test -count=1 -short -timeout 15m -exec qemu-arm $(QEMU_PKGS)

# Real kernel drivers (vivid, snd-aloop, the PL061 GPIO of QEMU's arm boards)
# for the camera, microphone and button code, in qemu-system VMs of amd64,
# arm64 and armv7 (test/vm/README.md). Downloads Debian kernels once into
# ~/.cache/onair-vm; about 2 minutes warm on 2 cores. Part of `make test`.
test-vm: check-go
	test/vm/run.sh

clean:
	rm -rf bin $(TIMINGS)

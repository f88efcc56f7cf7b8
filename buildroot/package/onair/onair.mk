################################################################################
#
# onair
#
################################################################################

# The source is this repository (the parent of the br2-external tree).
# buildroot/image.sh points ONAIR_OVERRIDE_SRCDIR (in local.mk) at an exported
# copy of the checkout that carries vendor/, because Buildroot's Go build runs
# with GOFLAGS=-mod=vendor and GOPROXY=off: no network at build time.
# Buildroot renames the version of an overridden source to "custom", so the
# firmware version lives in its own variable.
ONAIR_FIRMWARE_VERSION = $(call qstrip,$(BR2_PACKAGE_ONAIR_FIRMWARE_VERSION))
ONAIR_VERSION = $(ONAIR_FIRMWARE_VERSION)
ONAIR_SITE = $(BR2_EXTERNAL_ONAIR_PATH)/..
ONAIR_SITE_METHOD = local
ONAIR_LICENSE = Proprietary
ONAIR_GOMOD = github.com/onair/onair
ONAIR_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude=/buildroot/_output

# x264, Opus and ALSA are linked through cgo; pkg-config finds them in staging.
ONAIR_DEPENDENCIES = alsa-lib opus x264 host-pkgconf host-onair

ONAIR_BUILD_TARGETS = cmd/onaird

# Keep in step with buildroot/check-package-build.sh, which runs the same
# command here: the version is linked into internal/daemon.Version (what
# onaird reports), and -buildmode=exe because a pure-Go 32-bit arm binary
# cannot be PIE without an external linker. The "dynamic" tag makes
# pion/mediadevices' Opus codec link the opus package through pkg-config:
# its default is a prebuilt static library that `go mod vendor` leaves out.
ONAIR_TAGS = dynamic
ONAIR_LDFLAGS = -s -w -X $(ONAIR_GOMOD)/internal/daemon.Version=$(ONAIR_FIRMWARE_VERSION)
ONAIR_BUILD_OPTS = -buildmode=exe
ONAIR_GO_ENV = \
	CGO_ENABLED=1 \
	PKG_CONFIG="$(PKG_CONFIG_HOST_BINARY)"

# onair-bundle runs on the build machine (post-image signs the OTA bundle).
HOST_ONAIR_GOMOD = $(ONAIR_GOMOD)
HOST_ONAIR_BUILD_TARGETS = cmd/onair-bundle
HOST_ONAIR_LDFLAGS = -X $(ONAIR_GOMOD)/internal/daemon.Version=$(ONAIR_FIRMWARE_VERSION)
HOST_ONAIR_GO_ENV = CGO_ENABLED=0
# Not the target's libraries: the bundle tool is pure Go.
HOST_ONAIR_DEPENDENCIES =

define ONAIR_CHECK_VENDOR
	@test -f $(@D)/vendor/modules.txt || { \
		echo "onair: $(@D) has no vendor/: build through buildroot/image.sh," \
			"which vendors the Go modules before Buildroot runs offline"; \
		exit 1; }
endef
ONAIR_PRE_BUILD_HOOKS += ONAIR_CHECK_VENDOR
HOST_ONAIR_PRE_BUILD_HOOKS += ONAIR_CHECK_VENDOR

ONAIR_BOARD = $(call qstrip,$(BR2_PACKAGE_ONAIR_BOARD))
ONAIR_OTA_PUBLIC_KEYS = $(call qstrip,$(BR2_PACKAGE_ONAIR_OTA_PUBLIC_KEYS))

# What the daemon and the update agent read about the image they run in, and
# the sample config S05onair-data copies to the data partition at first boot.
define ONAIR_INSTALL_IMAGE_INFO
	mkdir -p $(TARGET_DIR)/etc/onair/ota-keys
	echo "$(ONAIR_FIRMWARE_VERSION)" > $(TARGET_DIR)/etc/onair/version
	echo "$(ONAIR_BOARD)" > $(TARGET_DIR)/etc/onair/board
	$(INSTALL) -D -m 0644 $(@D)/config/onair.yaml \
		$(TARGET_DIR)/usr/share/onair/onair.yaml
	$(INSTALL) -D -m 0644 $(@D)/device/v4l2/edid/edid-1080p30.bin \
		$(TARGET_DIR)/etc/onair/edid-1080p30.bin
	$(foreach key,$(ONAIR_OTA_PUBLIC_KEYS),
		$(INSTALL) -D -m 0644 $(key) \
			$(TARGET_DIR)/etc/onair/ota-keys/$(notdir $(key))
	)
endef
ONAIR_POST_INSTALL_TARGET_HOOKS += ONAIR_INSTALL_IMAGE_INFO

define ONAIR_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(ONAIR_PKGDIR)/S90onaird \
		$(TARGET_DIR)/etc/init.d/S90onaird
	$(INSTALL) -D -m 0755 $(ONAIR_PKGDIR)/onaird-supervise \
		$(TARGET_DIR)/usr/libexec/onair/onaird-supervise
endef

$(eval $(golang-package))
$(eval $(host-golang-package))

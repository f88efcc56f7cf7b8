# Every package of the OnAir tree; Buildroot includes this file after its own
# packages, so package/*/*.mk may use the golang-package infrastructure.
include $(sort $(wildcard $(BR2_EXTERNAL_ONAIR_PATH)/package/*/*.mk))

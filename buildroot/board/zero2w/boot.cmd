# OnAir slot choice on the Zero 2 W (the firmware's tryboot A/B is documented
# from the Pi 4 on). Compiled to boot.scr on partition 1; U-Boot's environment
# lives in uboot.env on the same partition.
#
#   boot_slot           A or B: the slot to boot (partitions 2+5 or 3+6)
#   upgrade_available   1 while a new slot is on trial: U-Boot then counts
#                       boots in bootcount; past bootlimit it runs altbootcmd
#                       instead of this script, and altbootcmd goes back.
#
# The update agent (ota/uboot) arms a trial by setting boot_slot,
# upgrade_available=1 and bootcount=0 in one environment write (fw_setenv -s),
# and commits with upgrade_available=0. It learns the running slot from
# onair.slot= on the kernel command line.

if test -z "${altbootcmd}"; then
	# First boot: keep the fallback in the saved environment so that
	# bootcount can reach it before this script runs.
	setenv bootlimit 1
	setenv altbootcmd 'if test "${boot_slot}" = "B"; then setenv boot_slot A; else setenv boot_slot B; fi; setenv upgrade_available 0; setenv bootcount 0; saveenv; run bootcmd'
	if test -z "${boot_slot}"; then
		setenv boot_slot A
	fi
	saveenv
fi

if test "${boot_slot}" = "B"; then
	setenv onair_bootpart 3
	setenv onair_rootpart 6
else
	setenv onair_bootpart 2
	setenv onair_rootpart 5
fi

setenv bootargs "root=PARTUUID=6f6e6169-0${onair_rootpart} rootfstype=ext4 rootwait ro console=serial0,115200 console=tty1 panic=5 oops=panic onair.slot=${boot_slot}"

load mmc 0:${onair_bootpart} ${kernel_addr_r} zImage
load mmc 0:${onair_bootpart} ${fdt_addr_r} bcm2710-rpi-zero-2-w.dtb
bootz ${kernel_addr_r} - ${fdt_addr_r}

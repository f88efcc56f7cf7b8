// Package buildroot holds no Go code: it is the Buildroot br2-external tree
// that builds the OnAir SD card image (configs/, package/, board/).
//
// Its tests check what can be checked without Buildroot itself: that the tree
// is well formed, and that each board's genimage layout, fed dummy partition
// contents by the real post-image script, gives the partition table the A/B
// update scheme relies on. They need Debian's genimage, mtools, dosfstools,
// e2fsprogs and fdisk.
package buildroot

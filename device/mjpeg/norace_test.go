//go:build !race

package mjpeg

const raceEnabled = false

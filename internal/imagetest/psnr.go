// Package imagetest compares pictures the way the codec tests judge them
// against ffmpeg's output.
package imagetest

import "math"

// PSNR is the peak signal-to-noise ratio of plane b against plane a, in dB,
// for 8-bit samples: +Inf when they are identical. The planes must be of
// equal length.
func PSNR(a, b []byte) float64 {
	var sum float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		sum += d * d
	}
	if sum == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/(sum/float64(len(a))))
}

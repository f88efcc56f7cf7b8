package imagetest

import (
	"math"
	"testing"
)

func TestPSNR(t *testing.T) {
	a := []byte{10, 20, 30, 40}
	if got := PSNR(a, a); !math.IsInf(got, 1) {
		t.Fatalf("identical planes: %v, want +Inf", got)
	}
	// Every sample off by 1: MSE 1, so 20*log10(255) = 48.13 dB.
	b := []byte{11, 21, 31, 41}
	if got := PSNR(a, b); math.Abs(got-48.13) > 0.01 {
		t.Fatalf("off by one: %.2f dB, want 48.13", got)
	}
	// Off by 255 everywhere: MSE 255^2, 0 dB.
	if got := PSNR([]byte{0, 0}, []byte{255, 255}); math.Abs(got) > 1e-9 {
		t.Fatalf("opposite planes: %v dB, want 0", got)
	}
}

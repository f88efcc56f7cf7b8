package web

import qrcode "github.com/skip2/go-qrcode"

// qrPNG draws text as a QR code a phone camera reads from a laptop screen.
func qrPNG(text string) ([]byte, error) {
	return qrcode.Encode(text, qrcode.Medium, 320)
}

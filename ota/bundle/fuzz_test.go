package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to the reader a box runs on downloaded
// data. It must never panic or allocate wildly, and whatever it accepts must
// be exactly what the manifest describes. The seed corpus in
// testdata/fuzz/FuzzOpen runs on every `go test`.
func FuzzOpen(f *testing.F) {
	keys := NewKeyring(pub(testKey(1)), pub(testKey(2)))
	f.Add(makeBundle(f, []byte("image"), testKey(1)))
	f.Add(makeBundle(f, []byte("image"), testKey(3), testKey(2)))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Open(bytes.NewReader(data), keys)
		if err != nil {
			return
		}
		if err := b.Manifest.Validate(); err != nil {
			t.Fatalf("accepted an invalid manifest: %v", err)
		}
		img, err := io.ReadAll(io.LimitReader(b.Image(), MaxImageSize))
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrOversized) && !errors.Is(err, ErrHashMismatch) {
				t.Fatalf("unexpected image error %v", err)
			}
			return
		}
		sum := sha256.Sum256(img)
		if int64(len(img)) != b.Manifest.ImageSize || hex.EncodeToString(sum[:]) != b.Manifest.ImageSHA256 {
			t.Fatal("accepted an image that does not match its manifest")
		}
		if b.HeaderSize+int64(len(img)) != int64(len(data)) {
			t.Fatal("accepted a bundle with bytes nobody read")
		}
	})
}

// FuzzDecodeManifest checks the strict JSON decoder on its own (after a
// signature it is the only thing that interprets the manifest).
func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"format":1,"version":"1.2.3","board":"pi4","image_size":3,"boot_size":0,"image_sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","created_at":"2026-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"format":1}{}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := DecodeManifest(raw)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded an invalid manifest: %v", err)
		}
	})
}

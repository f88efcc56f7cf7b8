package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// CreateOptions says what goes into a bundle's manifest and who signs it.
type CreateOptions struct {
	// Version of the firmware in the image, MAJOR.MINOR.PATCH.
	Version string
	// Board the image is built for.
	Board string
	// CreatedAt is recorded in the manifest (information only). Builders pass
	// SOURCE_DATE_EPOCH here for reproducible bundles.
	CreatedAt time.Time
	// BootSize is the length of the boot partition image at the start of
	// the image; zero when the image is a root file system only.
	BootSize int64
	// Keys sign the manifest, one signature each. During key rotation a
	// bundle is signed with the old and the new key.
	Keys []ed25519.PrivateKey
}

// Create writes a bundle of image to w. A boot partition image, when there
// is one, comes first in image and its length is opts.BootSize. The image is read twice (once to
// hash it for the manifest, once to copy it) and must not change between
// the two: the copy is hashed again and Create fails if it differs.
func Create(w io.Writer, image io.ReadSeeker, opts CreateOptions) (Manifest, error) {
	if len(opts.Keys) == 0 || len(opts.Keys) > MaxSignatures {
		return Manifest{}, fmt.Errorf("create bundle: %d signing keys (1 to %d allowed)", len(opts.Keys), MaxSignatures)
	}
	h := sha256.New()
	size, err := io.Copy(h, image)
	if err != nil {
		return Manifest{}, fmt.Errorf("create bundle: hash image: %w", err)
	}
	m := Manifest{
		Format:      FormatVersion,
		Version:     opts.Version,
		Board:       opts.Board,
		ImageSize:   size,
		BootSize:    opts.BootSize,
		ImageSHA256: hex.EncodeToString(h.Sum(nil)),
		CreatedAt:   opts.CreatedAt.UTC().Format(time.RFC3339),
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, fmt.Errorf("create bundle: %w", err)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return Manifest{}, fmt.Errorf("create bundle: encode manifest: %w", err)
	}
	header, err := EncodeHeader(raw, opts.Keys)
	if err != nil {
		return Manifest{}, fmt.Errorf("create bundle: %w", err)
	}
	if _, err := image.Seek(0, io.SeekStart); err != nil {
		return Manifest{}, fmt.Errorf("create bundle: rewind image: %w", err)
	}
	if _, err := w.Write(header); err != nil {
		return Manifest{}, fmt.Errorf("create bundle: write header: %w", err)
	}
	h.Reset()
	n, err := io.Copy(io.MultiWriter(w, h), image)
	if err != nil {
		return Manifest{}, fmt.Errorf("create bundle: copy image: %w", err)
	}
	if n != size || hex.EncodeToString(h.Sum(nil)) != m.ImageSHA256 {
		return Manifest{}, errors.New("create bundle: image changed while it was being bundled")
	}
	return m, nil
}

// EncodeHeader signs rawManifest with each key and returns the header bytes
// that precede the image. It does not check the manifest, so tests can build
// deliberately broken bundles with it.
func EncodeHeader(rawManifest []byte, keys []ed25519.PrivateKey) ([]byte, error) {
	if len(rawManifest) == 0 || len(rawManifest) > MaxManifestSize {
		return nil, fmt.Errorf("manifest of %d bytes (1 to %d allowed)", len(rawManifest), MaxManifestSize)
	}
	var b bytes.Buffer
	b.WriteString(Magic)
	var fields [8]byte
	binary.BigEndian.PutUint16(fields[0:2], FormatVersion)
	binary.BigEndian.PutUint16(fields[2:4], uint16(len(keys)))
	binary.BigEndian.PutUint32(fields[4:8], uint32(len(rawManifest)))
	b.Write(fields[:])
	b.Write(rawManifest)
	msg := signedMessage(rawManifest)
	for _, k := range keys {
		pub, ok := k.Public().(ed25519.PublicKey)
		if !ok || len(k) != ed25519.PrivateKeySize {
			return nil, errors.New("signing key is not an ed25519 private key")
		}
		id := IDOf(pub)
		b.Write(id[:])
		b.Write(ed25519.Sign(k, msg))
	}
	return b.Bytes(), nil
}

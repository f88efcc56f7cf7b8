// Package bundle reads, writes and authenticates OnAir update bundles: one
// file holding a signed manifest and the slot image it describes (an
// optional boot partition image, slot A's, followed by the root file
// system).
// The byte layout is documented in docs/bundle.md; this package is its only
// implementation, shared by the box and by cmd/onair-bundle.
//
// Nothing here looks at the wall clock: a Pi without an RTC boots in 1970 and
// must still accept a good bundle, so keys have no validity period and the
// manifest's created_at is information only.
package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"time"
)

// Magic starts every bundle file.
const Magic = "ONAIRBDL"

// FormatVersion is the layout version this package reads and writes.
const FormatVersion = 1

// Limits a reader enforces before allocating anything, so a hostile or
// corrupted header cannot make the box allocate much memory.
const (
	// MaxManifestSize bounds the manifest JSON.
	MaxManifestSize = 16 << 10
	// MaxSignatures bounds the number of signatures in one bundle.
	MaxSignatures = 16
	// MaxImageSize bounds the image size a manifest may declare (1 TiB).
	MaxImageSize = 1 << 40
)

// prefixSize is magic + format (u16) + signature count (u16) + manifest length (u32).
const prefixSize = len(Magic) + 2 + 2 + 4

// signatureSize is a key id followed by an ed25519 signature.
const signatureSize = KeyIDSize + ed25519.SignatureSize

// signingContext separates bundle signatures from any other use of the same
// key: a signature made for something else never verifies as a bundle.
const signingContext = "onair-bundle-manifest-v1\x00"

// Errors a bundle is refused with. Each names one distinct reason so the
// agent and the operator can tell them apart with errors.Is.
var (
	ErrNotBundle    = errors.New("not an OnAir bundle")
	ErrFormat       = errors.New("unsupported bundle format version")
	ErrMalformed    = errors.New("malformed bundle header")
	ErrBadManifest  = errors.New("invalid manifest")
	ErrUnknownKey   = errors.New("bundle is not signed by a trusted key")
	ErrBadSignature = errors.New("bundle signature does not verify")
	ErrTruncated    = errors.New("bundle is truncated")
	ErrOversized    = errors.New("bundle has more data than its manifest declares")
	ErrHashMismatch = errors.New("image sha256 does not match the manifest")
)

// Manifest describes the image in a bundle. It is signed byte for byte as it
// appears in the file; the struct is its decoded form.
type Manifest struct {
	// Format is FormatVersion of the bundle layout.
	Format int `json:"format"`
	// Version is the firmware version, MAJOR.MINOR.PATCH.
	Version string `json:"version"`
	// Board names the board the image runs on (pi4, pi5, zero2w).
	Board string `json:"board"`
	// ImageSize is the image length in bytes.
	ImageSize int64 `json:"image_size"`
	// BootSize is how many bytes at the start of the image are the slot's
	// boot partition (kernel, DTBs, config); the rest is the root file
	// system. Zero when the image is a root file system only.
	BootSize int64 `json:"boot_size"`
	// ImageSHA256 is the lower-case hex sha256 of the image.
	ImageSHA256 string `json:"image_sha256"`
	// CreatedAt is when the bundle was built (RFC 3339). Information only:
	// no check compares it with the box's clock.
	CreatedAt string `json:"created_at"`
}

var (
	boardPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	hashPattern  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Validate checks every field, so a manifest that passed it can be used
// without further checks.
func (m *Manifest) Validate() error {
	if m.Format != FormatVersion {
		return fmt.Errorf("%w: format %d, want %d", ErrBadManifest, m.Format, FormatVersion)
	}
	if _, err := ParseVersion(m.Version); err != nil {
		return fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	if !boardPattern.MatchString(m.Board) {
		return fmt.Errorf("%w: board %q", ErrBadManifest, m.Board)
	}
	if m.ImageSize <= 0 || m.ImageSize > MaxImageSize {
		return fmt.Errorf("%w: image_size %d", ErrBadManifest, m.ImageSize)
	}
	if m.BootSize < 0 || m.BootSize >= m.ImageSize {
		return fmt.Errorf("%w: boot_size %d outside 0 to image_size-1", ErrBadManifest, m.BootSize)
	}
	if !hashPattern.MatchString(m.ImageSHA256) {
		return fmt.Errorf("%w: image_sha256 %q is not 64 lower-case hex digits", ErrBadManifest, m.ImageSHA256)
	}
	if _, err := time.Parse(time.RFC3339, m.CreatedAt); err != nil {
		return fmt.Errorf("%w: created_at %q: %w", ErrBadManifest, m.CreatedAt, err)
	}
	return nil
}

// Signature is one signature over the manifest.
type Signature struct {
	KeyID KeyID
	Sig   [ed25519.SignatureSize]byte
}

// Header is a bundle's header as read from the file, not yet authenticated.
type Header struct {
	// RawManifest is the manifest exactly as signed.
	RawManifest []byte
	// Signatures in file order.
	Signatures []Signature
}

// Size is the number of bytes the header occupies; the image follows it.
func (h *Header) Size() int64 {
	return int64(prefixSize + len(h.RawManifest) + len(h.Signatures)*signatureSize)
}

// ReadHeader reads a bundle header from r and leaves r at the first image
// byte. It checks only the framing; Verify authenticates it.
func ReadHeader(r io.Reader) (*Header, error) {
	var prefix [prefixSize]byte
	n, err := io.ReadFull(r, prefix[:])
	if n >= len(Magic) && string(prefix[:len(Magic)]) != Magic {
		return nil, ErrNotBundle
	}
	if err != nil {
		return nil, headerReadError("prefix", err)
	}
	rest := prefix[len(Magic):]
	format := binary.BigEndian.Uint16(rest[0:2])
	sigCount := int(binary.BigEndian.Uint16(rest[2:4]))
	manifestLen := binary.BigEndian.Uint32(rest[4:8])
	if format != FormatVersion {
		return nil, fmt.Errorf("%w: %d (this agent reads %d)", ErrFormat, format, FormatVersion)
	}
	if sigCount == 0 || sigCount > MaxSignatures {
		return nil, fmt.Errorf("%w: %d signatures (1 to %d allowed)", ErrMalformed, sigCount, MaxSignatures)
	}
	if manifestLen == 0 || manifestLen > MaxManifestSize {
		return nil, fmt.Errorf("%w: manifest of %d bytes (1 to %d allowed)", ErrMalformed, manifestLen, MaxManifestSize)
	}
	h := &Header{RawManifest: make([]byte, manifestLen), Signatures: make([]Signature, sigCount)}
	if _, err := io.ReadFull(r, h.RawManifest); err != nil {
		return nil, headerReadError("manifest", err)
	}
	var buf [signatureSize]byte
	for i := range h.Signatures {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return nil, headerReadError("signature", err)
		}
		copy(h.Signatures[i].KeyID[:], buf[:KeyIDSize])
		copy(h.Signatures[i].Sig[:], buf[KeyIDSize:])
	}
	return h, nil
}

func headerReadError(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: file ends inside the %s", ErrTruncated, what)
	}
	return fmt.Errorf("read bundle %s: %w", what, err)
}

// Verify authenticates the header against the trusted keys and decodes the
// manifest. The signature is checked before the JSON is parsed, so nothing
// from an unauthenticated manifest is interpreted. It returns the manifest
// and the id of the key whose signature was accepted.
func (h *Header) Verify(keys *Keyring) (Manifest, KeyID, error) {
	msg := signedMessage(h.RawManifest)
	var accepted KeyID
	trusted, ok := false, false
	for _, s := range h.Signatures {
		pub, known := keys.lookup(s.KeyID)
		if !known {
			continue
		}
		trusted = true
		if ed25519.Verify(pub, msg, s.Sig[:]) {
			accepted, ok = s.KeyID, true
			break
		}
	}
	switch {
	case !trusted:
		return Manifest{}, KeyID{}, fmt.Errorf("%w (signed by %s; trusted: %s)", ErrUnknownKey, h.keyIDs(), keys)
	case !ok:
		return Manifest{}, KeyID{}, ErrBadSignature
	}
	m, err := DecodeManifest(h.RawManifest)
	if err != nil {
		return Manifest{}, KeyID{}, err
	}
	return m, accepted, nil
}

func (h *Header) keyIDs() string {
	var b bytes.Buffer
	for i, s := range h.Signatures {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(s.KeyID.String())
	}
	return b.String()
}

// DecodeManifest parses and validates manifest JSON strictly: unknown fields
// and trailing data are refused, because an older agent must not silently
// ignore something a newer builder meant to be honoured.
func DecodeManifest(raw []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	if dec.More() {
		return Manifest{}, fmt.Errorf("%w: data after the JSON object", ErrBadManifest)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Manifest{}, fmt.Errorf("%w: data after the JSON object", ErrBadManifest)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

func signedMessage(rawManifest []byte) []byte {
	msg := make([]byte, 0, len(signingContext)+len(rawManifest))
	msg = append(msg, signingContext...)
	return append(msg, rawManifest...)
}

// Bundle is an authenticated bundle whose image is still to be read.
type Bundle struct {
	// Manifest is the verified manifest.
	Manifest Manifest
	// KeyID is the trusted key that signed it.
	KeyID KeyID
	// HeaderSize is where the image starts in the file.
	HeaderSize int64

	r io.Reader
}

// Open reads and authenticates a bundle header from r. The image is then
// read with Image. Open reads only the header, so a bundle can be refused
// (wrong key, tampered manifest) before a single image byte is fetched.
func Open(r io.Reader, keys *Keyring) (*Bundle, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	m, id, err := h.Verify(keys)
	if err != nil {
		return nil, err
	}
	return &Bundle{Manifest: m, KeyID: id, HeaderSize: h.Size(), r: r}, nil
}

// Image returns a reader of the image. It yields exactly the manifest's
// ImageSize bytes and then, instead of io.EOF, an error if the file is short
// (ErrTruncated), continues past the image (ErrOversized) or the bytes do not
// hash to the manifest's sha256 (ErrHashMismatch). A consumer that reads to
// io.EOF has therefore checked the image.
func (b *Bundle) Image() *ImageReader {
	return &ImageReader{r: b.r, remaining: b.Manifest.ImageSize, want: b.Manifest.ImageSHA256, h: sha256.New()}
}

// ResumeImage is Image for a reader positioned offset bytes into the image,
// with hashState (from HashState at that offset) standing for the bytes
// already read, so an interrupted install can continue where it stopped.
func (b *Bundle) ResumeImage(offset int64, hashState []byte) (*ImageReader, error) {
	if offset < 0 || offset > b.Manifest.ImageSize {
		return nil, fmt.Errorf("resume image at %d: outside 0 to %d", offset, b.Manifest.ImageSize)
	}
	h := sha256.New()
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return nil, errors.New("resume image: sha256 state cannot be restored")
	}
	if err := u.UnmarshalBinary(hashState); err != nil {
		return nil, fmt.Errorf("resume image: %w", err)
	}
	return &ImageReader{r: b.r, remaining: b.Manifest.ImageSize - offset, want: b.Manifest.ImageSHA256, h: h}, nil
}

// ImageReader reads and checks a bundle's image; see Bundle.Image.
type ImageReader struct {
	r         io.Reader
	remaining int64
	want      string
	h         hash.Hash
	done      error
}

// HashState captures the hash of the bytes read so far, for ResumeImage.
func (ir *ImageReader) HashState() ([]byte, error) {
	m, ok := ir.h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, errors.New("sha256 state cannot be saved")
	}
	return m.MarshalBinary()
}

func (ir *ImageReader) Read(p []byte) (int, error) {
	if ir.done != nil {
		return 0, ir.done
	}
	if ir.remaining == 0 {
		ir.done = ir.finish()
		return 0, ir.done
	}
	if int64(len(p)) > ir.remaining {
		p = p[:ir.remaining]
	}
	n, err := ir.r.Read(p)
	ir.h.Write(p[:n])
	ir.remaining -= int64(n)
	if errors.Is(err, io.EOF) {
		if ir.remaining > 0 {
			ir.done = fmt.Errorf("%w: %d image bytes missing", ErrTruncated, ir.remaining)
			return n, ir.done
		}
		err = nil
	}
	if err != nil {
		return n, fmt.Errorf("read bundle image: %w", err)
	}
	return n, nil
}

func (ir *ImageReader) finish() error {
	var one [1]byte
	for {
		n, err := ir.r.Read(one[:])
		if n > 0 {
			return ErrOversized
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read bundle end: %w", err)
		}
	}
	if got := hex.EncodeToString(ir.h.Sum(nil)); got != ir.want {
		return fmt.Errorf("%w: got %s, manifest says %s", ErrHashMismatch, got, ir.want)
	}
	return io.EOF
}

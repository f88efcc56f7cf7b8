package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"
)

// testKey is deterministic so fuzz seeds stay valid across runs.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func makeBundle(t testing.TB, image []byte, keys ...ed25519.PrivateKey) []byte {
	t.Helper()
	var b bytes.Buffer
	_, err := Create(&b, bytes.NewReader(image), CreateOptions{
		Version: "1.2.3", Board: "pi4", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Keys: keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// readAll opens and reads a whole bundle, returning the first error.
func readAll(data []byte, keys *Keyring) (*Bundle, []byte, error) {
	b, err := Open(bytes.NewReader(data), keys)
	if err != nil {
		return nil, nil, err
	}
	img, err := io.ReadAll(b.Image())
	return b, img, err
}

func TestRoundTrip(t *testing.T) {
	image := []byte("root file system bytes")
	data := makeBundle(t, image, testKey(1))
	b, got, err := readAll(data, NewKeyring(pub(testKey(1))))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, image) {
		t.Fatalf("image %q, want %q", got, image)
	}
	if b.Manifest.Version != "1.2.3" || b.Manifest.Board != "pi4" || b.Manifest.ImageSize != int64(len(image)) {
		t.Fatalf("manifest %+v", b.Manifest)
	}
	if b.KeyID != IDOf(pub(testKey(1))) {
		t.Fatalf("key id %s", b.KeyID)
	}
	if b.HeaderSize+int64(len(image)) != int64(len(data)) {
		t.Fatalf("header size %d inconsistent with file of %d", b.HeaderSize, len(data))
	}
}

// TestManifestGolden pins the manifest bytes: they are signed, so any change
// to their encoding is a format change.
func TestManifestGolden(t *testing.T) {
	data := makeBundle(t, []byte("abc"), testKey(1))
	h, err := ReadHeader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"format":1,"version":"1.2.3","board":"pi4","image_size":3,"boot_size":0,` +
		`"image_sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","created_at":"2026-01-02T03:04:05Z"}`
	if string(h.RawManifest) != want {
		t.Fatalf("manifest\n%s\nwant\n%s", h.RawManifest, want)
	}
	if !bytes.HasPrefix(data, []byte("ONAIRBDL\x00\x01\x00\x01")) {
		t.Fatalf("prefix %q", data[:12])
	}
}

func TestRefusals(t *testing.T) {
	image := bytes.Repeat([]byte("0123456789"), 100)
	good := makeBundle(t, image, testKey(1))
	keys := NewKeyring(pub(testKey(1)))
	h, err := ReadHeader(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	manifestStart := int64(prefixSize)
	sigStart := manifestStart + int64(len(h.RawManifest))
	imageStart := h.Size()
	flip := func(off int64) []byte {
		b := bytes.Clone(good)
		b[off] ^= 0x10
		return b
	}
	resign := func(mutate func(*Manifest)) []byte {
		m, err := DecodeManifest(h.RawManifest)
		if err != nil {
			t.Fatal(err)
		}
		mutate(&m)
		raw, _ := json.Marshal(m)
		hdr, err := EncodeHeader(raw, []ed25519.PrivateKey{testKey(1)})
		if err != nil {
			t.Fatal(err)
		}
		return append(hdr, image...)
	}
	cases := []struct {
		name string
		data []byte
		keys *Keyring
		want error
	}{
		{"flipped bit in image", flip(imageStart + 500), keys, ErrHashMismatch},
		{"flipped bit in manifest", flip(manifestStart + 20), keys, ErrBadSignature},
		{"flipped bit in signature", flip(sigStart + KeyIDSize + 7), keys, ErrBadSignature},
		{"flipped bit in key id", flip(sigStart + 1), keys, ErrUnknownKey},
		{"wrong key", good, NewKeyring(pub(testKey(2))), ErrUnknownKey},
		{"truncated image", good[:len(good)-1], keys, ErrTruncated},
		{"truncated header", good[:sigStart+3], keys, ErrTruncated},
		{"oversized", append(bytes.Clone(good), 0), keys, ErrOversized},
		{"not a bundle", []byte("PK\x03\x04 zip file"), keys, ErrNotBundle},
		{"empty", nil, keys, ErrTruncated},
		{"future format", append([]byte("ONAIRBDL\x00\x02"), good[10:]...), keys, ErrFormat},
		{"signed but invalid manifest", resign(func(m *Manifest) { m.ImageSHA256 = "XYZ" }), keys, ErrBadManifest},
		{"signed size larger than image", resign(func(m *Manifest) { m.ImageSize++ }), keys, ErrTruncated},
		{"signed size smaller than image", resign(func(m *Manifest) { m.ImageSize-- }), keys, ErrOversized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := readAll(c.data, c.keys)
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
}

// TestKeyRotation: a bundle signed with old and new key is accepted by boxes
// trusting either; after the old key is retired, its bundles are refused.
func TestKeyRotation(t *testing.T) {
	oldKey, newKey := testKey(1), testKey(2)
	both := makeBundle(t, []byte("img"), oldKey, newKey)
	onlyOld := makeBundle(t, []byte("img"), oldKey)
	for _, trusted := range []*Keyring{NewKeyring(pub(oldKey)), NewKeyring(pub(newKey)), NewKeyring(pub(oldKey), pub(newKey))} {
		if _, _, err := readAll(both, trusted); err != nil {
			t.Fatalf("trusting %s: %v", trusted, err)
		}
	}
	if _, _, err := readAll(onlyOld, NewKeyring(pub(newKey))); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("retired key: %v, want %v", err, ErrUnknownKey)
	}
}

func TestKeysPEM(t *testing.T) {
	priv1, pub1, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, pub2, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePrivateKey(priv1)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := ParseKeyring(append(pub1, pub2...))
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() != 2 {
		t.Fatalf("keyring has %d keys", kr.Len())
	}
	if _, ok := kr.lookup(IDOf(pub(k))); !ok {
		t.Fatal("private key's public half not in keyring")
	}
	for _, bad := range [][]byte{nil, []byte("junk"), priv1, append(bytes.Clone(pub1), "trailing junk"...)} {
		if _, err := ParseKeyring(bad); err == nil {
			t.Errorf("ParseKeyring(%.20q) accepted", bad)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, bad := range []string{"", "1", "1.2", "1.2.3.4", "01.2.3", "1.2.x", "-1.2.3", "1.2.3-rc1", "1..3", "4294967296.0.0"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
	order := []string{"0.0.1", "0.1.0", "0.9.9", "0.10.0", "1.0.0", "1.0.10", "2.0.0"}
	for i := 1; i < len(order); i++ {
		a, _ := ParseVersion(order[i-1])
		b, _ := ParseVersion(order[i])
		if a.Compare(b) != -1 || b.Compare(a) != 1 || a.Compare(a) != 0 {
			t.Errorf("%s vs %s ordered wrongly", a, b)
		}
	}
}

package bundle

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// KeyIDSize is the length of a key id in bytes.
const KeyIDSize = 8

// KeyID names a public key: the first 8 bytes of the sha256 of its 32 raw
// bytes. A bundle carries it next to each signature so the box finds the
// right key without trying them all, and logs can name the key.
type KeyID [KeyIDSize]byte

// String is the id in hex, as keygen prints it.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// IDOf returns the id of a public key.
func IDOf(pub ed25519.PublicKey) KeyID {
	sum := sha256.Sum256(pub)
	var id KeyID
	copy(id[:], sum[:KeyIDSize])
	return id
}

// Keyring is the set of public keys a box trusts. Several keys make rotation
// possible: a new key is added in one release, bundles are signed with both,
// and a later release drops the old key.
type Keyring struct {
	keys map[KeyID]ed25519.PublicKey
}

// NewKeyring trusts the given keys.
func NewKeyring(keys ...ed25519.PublicKey) *Keyring {
	kr := &Keyring{keys: make(map[KeyID]ed25519.PublicKey, len(keys))}
	for _, k := range keys {
		kr.keys[IDOf(k)] = slices.Clone(k)
	}
	return kr
}

// ParseKeyring reads one or more PEM "PUBLIC KEY" blocks (PKIX, ed25519),
// as keygen writes them; concatenated files make a keyring.
func ParseKeyring(data []byte) (*Keyring, error) {
	var keys []ed25519.PublicKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("parse keyring: unexpected PEM block %q", block.Type)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse keyring: %w", err)
		}
		edPub, ok := pub.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("parse keyring: key is %T, not ed25519", pub)
		}
		keys = append(keys, edPub)
	}
	if strings.TrimSpace(string(data)) != "" {
		return nil, errors.New("parse keyring: text that is not a PEM block")
	}
	if len(keys) == 0 {
		return nil, errors.New("parse keyring: no public keys")
	}
	return NewKeyring(keys...), nil
}

// Len is the number of trusted keys.
func (kr *Keyring) Len() int { return len(kr.keys) }

// IDs lists the trusted key ids, sorted.
func (kr *Keyring) IDs() []KeyID {
	ids := make([]KeyID, 0, len(kr.keys))
	for id := range kr.keys {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b KeyID) int { return strings.Compare(a.String(), b.String()) })
	return ids
}

// String lists the key ids for error messages.
func (kr *Keyring) String() string {
	ids := kr.IDs()
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return strings.Join(s, ",")
}

func (kr *Keyring) lookup(id KeyID) (ed25519.PublicKey, bool) {
	if kr == nil {
		return nil, false
	}
	k, ok := kr.keys[id]
	return k, ok
}

// GenerateKey makes a signing key from rand and returns it PEM-encoded
// (PKCS #8 private key, PKIX public key).
func GenerateKey(rand io.Reader) (privatePEM, publicPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("encode private key: %w", err)
	}
	pubPEM, err := EncodePublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), pubPEM, nil
}

// EncodePublicKey PEM-encodes a public key as keygen writes it.
func EncodePublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePrivateKey reads a PEM "PRIVATE KEY" block holding an ed25519 key.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("parse private key: no PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse private key: key is %T, not ed25519", k)
	}
	return priv, nil
}

package ota_test

import (
	"bytes"
	"crypto/ed25519"
	"strings"
)

type ed25519PrivateKey = ed25519.PrivateKey

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

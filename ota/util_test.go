package ota_test

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"strings"
)

type ed25519PrivateKey = ed25519.PrivateKey

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func readFile(t interface {
	Helper()
	Fatal(...any)
}, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

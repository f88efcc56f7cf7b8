package fleet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/onair/onair/config"
)

// pki is a throwaway CA with one server and one client certificate.
type pki struct {
	caFile, certFile, keyFile string
	serverCert                tls.Certificate
	pool                      *x509.CertPool
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := pki{caFile: write("ca.pem", "CERTIFICATE", caDER), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	srvDER, srvKey := issue("broker", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.serverCert = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	cliDER, cliKey := issue("box1", x509.ExtKeyUsageClientAuth, nil)
	keyDER, _ := x509.MarshalECPrivateKey(cliKey)
	p.certFile = write("box1.crt", "CERTIFICATE", cliDER)
	p.keyFile = write("box1.key", "EC PRIVATE KEY", keyDER)
	return p
}

// startSecureBroker is mochi with TLS that requires a client certificate
// from the test CA, and a password for user box1.
func startSecureBroker(t *testing.T, p pki) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsLn := tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{p.serverCert}, ClientCAs: p.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	ledger := &auth.Ledger{Auth: auth.AuthRules{{Username: "box1", Password: "right", Allow: true}}}
	if err := srv.AddHook(new(auth.Hook), &auth.Options{Ledger: ledger}); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewNet("tls", tlsLn)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	b := &broker{srv: srv, ln: ln, addr: ln.Addr().String()}
	t.Cleanup(b.stop)
	return "ssl://" + ln.Addr().String()
}

// TestTLSClientCertificateAndPassword: the box verifies the broker with
// ca_file, shows its certificate and logs in; a wrong password keeps it out
// (retrying), and it never crashes over it.
func TestTLSClientCertificateAndPassword(t *testing.T) {
	p := newPKI(t)
	url := startSecureBroker(t, p)
	secure := func(password string) boxOption {
		return func(o *Options) {
			o.Config.CAFile, o.Config.CertFile, o.Config.KeyFile = p.caFile, p.certFile, p.keyFile
			o.Config.Username, o.Config.Password = "box1", password
		}
	}
	bx := startBox(t, url, secure("right"))
	eventually(t, func() bool { return bx.Stats().Connected }, "a TLS connection")
	if err := bx.Close(); err != nil {
		t.Fatal(err)
	}

	wrong := startBox(t, url, secure("wrong"), func(o *Options) { o.DeviceID = "box2" })
	eventually(t, func() bool { return wrong.Stats().ConnectFailures >= 3 }, "refused attempts")
	if wrong.Stats().Connected {
		t.Fatal("connected with a wrong password")
	}
}

func TestTLSConfigErrors(t *testing.T) {
	p := newPKI(t)
	cases := []struct {
		cfg  config.MQTT
		want string
	}{
		{config.MQTT{Broker: "tcp://h:1883", CAFile: p.caFile}, "not ssl://"},
		{config.MQTT{Broker: "ssl://h:8883", CAFile: "/nonexistent/ca.pem"}, "mqtt.ca_file"},
		{config.MQTT{Broker: "ssl://h:8883", CAFile: p.keyFile}, "no PEM certificate"},
		{config.MQTT{Broker: "ssl://h:8883", CertFile: p.certFile}, "go together"},
		{config.MQTT{Broker: "ssl://h:8883", CertFile: p.certFile, KeyFile: p.caFile}, "cert_file/key_file"},
	}
	for _, tc := range cases {
		_, err := New(Options{Config: tc.cfg, DeviceID: "box1", Status: sampleStatus})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
	c, err := tlsConfig(config.MQTT{Broker: "ssl://mqtt.example.org:8883", CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile})
	if err != nil || c.ServerName != "mqtt.example.org" || len(c.Certificates) != 1 || c.RootCAs == nil {
		t.Fatalf("tls config %+v, %v", c, err)
	}
}

package fleet

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"

	"github.com/onair/onair/config"
)

// tlsConfig builds the TLS settings for ssl://, tls:// and wss:// brokers:
// the CA file (else the system roots) and a client certificate for a
// per-device identity. Plain tcp:// gets nil: TLS files with a plain broker
// are a mistake worth refusing rather than silently ignoring.
func tlsConfig(cfg config.MQTT) (*tls.Config, error) {
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		return nil, fmt.Errorf("fleet: broker %q: %w", cfg.Broker, err)
	}
	secure := u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "wss" || u.Scheme == "mqtts"
	if !secure {
		if cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "" {
			return nil, fmt.Errorf("fleet: mqtt.ca_file/cert_file/key_file are set but broker %q is not ssl://", cfg.Broker)
		}
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("fleet: mqtt.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("fleet: mqtt.ca_file %s: no PEM certificate in it", cfg.CAFile)
		}
		t.RootCAs = pool
	}
	switch {
	case cfg.CertFile != "" && cfg.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("fleet: mqtt.cert_file/key_file: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	case cfg.CertFile != "" || cfg.KeyFile != "":
		return nil, errors.New("fleet: mqtt.cert_file and mqtt.key_file go together: set both or neither")
	}
	return t, nil
}

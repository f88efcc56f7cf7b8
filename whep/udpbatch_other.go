//go:build !linux

package whep

import (
	"errors"
	"log/slog"
	"net"
)

// batchConn batches sends on Linux only; elsewhere the socket is used as is.
type batchConn struct{ *net.UDPConn }

func (*batchConn) Hold()    {}
func (*batchConn) Release() {}

func newBatchConn(*net.UDPConn, *slog.Logger) (*batchConn, error) {
	return nil, errors.New("batched UDP sends need Linux")
}

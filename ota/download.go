package ota

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DownloadOptions tunes HTTP downloads. Every wait is finite, so a download
// that cannot finish ends as a reported failure, never a hang.
type DownloadOptions struct {
	// Client replaces the agent's own HTTP client (its timeouts then apply).
	Client *http.Client
	// ConnectTimeout bounds connecting, TLS and waiting for response
	// headers. Default 30s.
	ConnectTimeout time.Duration
	// StallTimeout ends a connection that delivers no byte for this long;
	// the download then resumes on a new one. Default 60s.
	StallTimeout time.Duration
	// MaxAttempts is how many connections in a row may fail without
	// delivering a byte before the download gives up. Default 6.
	MaxAttempts int
	// Backoff is the first wait after a connection that delivered nothing;
	// it doubles up to 1m. A connection that delivered data is resumed at
	// once. Default 2s.
	Backoff time.Duration
}

func (o DownloadOptions) withDefaults() DownloadOptions {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 30 * time.Second
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 60 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 6
	}
	if o.Backoff <= 0 {
		o.Backoff = 2 * time.Second
	}
	return o
}

func newDialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
}

// download is an io.ReadCloser over an HTTP resource that survives broken
// connections: it reconnects with a Range request from where it stopped,
// with If-Range so a file replaced on the server is never spliced.
type download struct {
	ctx   context.Context
	url   string
	opts  DownloadOptions
	clock Clock
	log   *slog.Logger

	client      *http.Client
	closeClient func()
	body        io.ReadCloser
	cancelBody  context.CancelFunc
	offset      int64
	size        int64 // -1 until known
	validator   string
	failures    int
	lastErr     error
	eof         bool // the whole resource was read; never reconnect after that
}

// errPermanent marks an HTTP answer that retrying cannot fix.
type errPermanent struct{ err error }

func (e errPermanent) Error() string { return e.err.Error() }
func (e errPermanent) Unwrap() error { return e.err }

func openDownload(ctx context.Context, url string, opts DownloadOptions, clock Clock, log *slog.Logger) (*download, error) {
	opts = opts.withDefaults()
	client, closeClient := httpClientFor(opts)
	d := &download{ctx: ctx, url: url, opts: opts, clock: clock, log: log, client: client, closeClient: closeClient, size: -1}
	// Connect now so an unreachable server or a 404 is reported before the
	// agent touches any state.
	if err := d.reconnect(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *download) Read(p []byte) (int, error) {
	if d.eof {
		return 0, io.EOF
	}
	for {
		if d.body == nil {
			if err := d.reconnect(); err != nil {
				return 0, err
			}
		}
		n, err := d.readBody(p)
		d.offset += int64(n)
		if n > 0 {
			d.failures = 0
		}
		if err == nil {
			return n, nil
		}
		d.dropBody()
		if errors.Is(err, io.EOF) && (d.size < 0 || d.offset >= d.size) {
			d.eof = true
			return n, io.EOF
		}
		if err := d.ctx.Err(); err != nil {
			return n, err
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		d.log.Warn("download interrupted, resuming", "url", d.url, "offset", d.offset, "err", err)
		d.lastErr = err
		d.failures++
		if n > 0 {
			return n, nil
		}
	}
}

// readBody reads with a stall timer: a connection that goes silent is
// cancelled, which the retry loop treats like any broken connection.
func (d *download) readBody(p []byte) (int, error) {
	cancel := d.cancelBody
	stop := d.clock.AfterFunc(d.opts.StallTimeout, cancel)
	n, err := d.body.Read(p)
	stop()
	return n, err
}

func (d *download) dropBody() {
	if d.body != nil {
		d.body.Close()
		d.cancelBody()
		d.body, d.cancelBody = nil, nil
	}
}

// reconnect opens a connection at d.offset, retrying with backoff while
// connections fail without delivering anything.
func (d *download) reconnect() error {
	for {
		if d.failures >= d.opts.MaxAttempts {
			return fmt.Errorf("%w: %s: gave up after %d attempts without progress at byte %d: %w", ErrDownload, d.url, d.failures, d.offset, d.lastErr)
		}
		if d.failures > 1 {
			wait := min(d.opts.Backoff<<(d.failures-2), time.Minute)
			select {
			case <-d.ctx.Done():
				return d.ctx.Err()
			case <-d.clock.After(wait):
			}
		}
		err := d.connect()
		if err == nil {
			return nil
		}
		if perm := (errPermanent{}); errors.As(err, &perm) || d.ctx.Err() != nil {
			return fmt.Errorf("%w: %s: %w", ErrDownload, d.url, err)
		}
		d.log.Warn("download connection failed", "url", d.url, "offset", d.offset, "err", err)
		d.lastErr = err
		d.failures++
	}
}

func (d *download) connect() error {
	ctx, cancel := context.WithCancel(d.ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		cancel()
		return errPermanent{err}
	}
	if d.offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", d.offset))
		if d.validator != "" {
			req.Header.Set("If-Range", d.validator)
		}
	}
	// The whole exchange up to the first body byte is bounded by the
	// client's transport timeouts; the stall timer covers the body.
	resp, err := d.client.Do(req)
	if err != nil {
		cancel()
		return err
	}
	if err := d.accept(resp); err != nil {
		resp.Body.Close()
		cancel()
		return err
	}
	d.body, d.cancelBody = resp.Body, cancel
	return nil
}

func (d *download) accept(resp *http.Response) error {
	switch {
	case resp.StatusCode == http.StatusOK:
		validator := responseValidator(resp)
		if d.offset > 0 {
			// The server sent the whole file: either it ignores Range or the
			// file changed (If-Range failed). Only the first is resumable.
			if d.validator != "" && validator != d.validator {
				return errPermanent{fmt.Errorf("bundle changed on the server during the download")}
			}
			if _, err := io.CopyN(io.Discard, resp.Body, d.offset); err != nil {
				return fmt.Errorf("skip %d bytes already received: %w", d.offset, err)
			}
		}
		d.validator = validator
		if resp.ContentLength >= 0 {
			d.size = resp.ContentLength
		}
		return nil
	case resp.StatusCode == http.StatusPartialContent:
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return errPermanent{err}
		}
		if start != d.offset {
			return errPermanent{fmt.Errorf("server resumed at byte %d, asked for %d", start, d.offset)}
		}
		if total >= 0 {
			d.size = total
		}
		return nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return fmt.Errorf("server answered %s", resp.Status)
	default:
		return errPermanent{fmt.Errorf("server answered %s", resp.Status)}
	}
}

// responseValidator picks what If-Range may carry: a strong ETag, else
// Last-Modified (RFC 9110 forbids weak ETags there).
func responseValidator(resp *http.Response) string {
	if etag := resp.Header.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		return etag
	}
	return resp.Header.Get("Last-Modified")
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*").
func parseContentRange(v string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	span, totalText, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	startText, _, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	start, err = strconv.ParseInt(startText, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	total = -1
	if totalText != "*" {
		total, err = strconv.ParseInt(totalText, 10, 64)
		if err != nil || total < 0 {
			return 0, 0, fmt.Errorf("bad Content-Range %q", v)
		}
	}
	return start, total, nil
}

// SkipTo continues the download at byte off: the next read asks the server
// for the rest from there (Range, If-Range as for a broken connection).
func (d *download) SkipTo(off int64) error {
	if off < d.offset {
		return fmt.Errorf("skip back to %d from %d", off, d.offset)
	}
	d.dropBody()
	d.offset = off
	return nil
}

func (d *download) Close() error {
	d.dropBody()
	d.closeClient()
	return nil
}

package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// ServeMedia answers GET and HEAD for a replay's media (fMP4) to a browser
// <video>: a finished replay with full HTTP range support through
// http.ServeContent, one being recorded as described in docs/replay.md
// ("Serving a growing replay"). Unknown ids and ids that are not plain safe
// names answer 404, unsatisfiable or malformed ranges 416; errors are JSON
// {"error": "..."}. Authorization (private replays) is the caller's job.
func (l *Library) ServeMedia(w http.ResponseWriter, r *http.Request, id string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		jsonError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if !validID(id) {
		jsonError(w, http.StatusNotFound, ErrNotFound.Error())
		return
	}
	l.mu.Lock()
	e, ok := l.entries[id]
	var rec *recording
	if ok {
		rec = e.rec
	}
	l.mu.Unlock()
	if !ok {
		jsonError(w, http.StatusNotFound, ErrNotFound.Error())
		return
	}
	f, err := os.Open(l.path(id, ".mp4"))
	if err != nil {
		jsonError(w, http.StatusNotFound, ErrNotFound.Error())
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "video/mp4")
	if rec != nil {
		l.serveGrowing(w, r, f, rec)
		return
	}
	st, err := f.Stat()
	if err != nil {
		jsonError(w, http.StatusInternalServerError, "cannot read the replay")
		return
	}
	// Check the range first so that a bad one gets a JSON error like every
	// other error; ServeContent then does the rest (If-Range, multipart).
	if _, err := parseRange(r.Header.Get("Range"), st.Size()); err != nil {
		rangeError(w, err, st.Size())
		return
	}
	w.Header().Set("Cache-Control", "private, no-cache")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// serveGrowing serves a replay while it is being recorded. Its length is
// not final, so a request without a range (or "bytes=0-", what a <video>
// sends first) gets the file as a stream that follows the recording until
// it ends; a range gets the committed bytes it covers, with the complete
// length "*"; a range starting at or past the committed end gets 416.
func (l *Library) serveGrowing(w http.ResponseWriter, r *http.Request, f *os.File, rec *recording) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	spec := strings.TrimSpace(r.Header.Get("Range"))
	l.mu.Lock()
	committed := rec.committed
	l.mu.Unlock()
	if spec != "" && spec != "bytes=0-" {
		ranges, err := parseRange(spec, committed)
		if err != nil {
			rangeError(w, err, committed)
			return
		}
		if len(ranges) == 1 {
			ra := ranges[0]
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/*", ra.start, ra.start+ra.length-1))
			h.Set("Content-Length", strconv.FormatInt(ra.length, 10))
			w.WriteHeader(http.StatusPartialContent)
			if r.Method != http.MethodHead {
				io.Copy(w, io.NewSectionReader(f, ra.start, ra.length))
			}
			return
		}
		// Several ranges of a growing file: ignore them (RFC 9110 14.2
		// allows it) and stream.
	}
	h.Set("Accept-Ranges", "none")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	rc := http.NewResponseController(w)
	buf := make([]byte, 64<<10)
	var off int64
	for {
		l.mu.Lock()
		committed, grew, done := rec.committed, rec.grew, rec.done
		l.mu.Unlock()
		if done {
			// Finished: the rest of the file, index included.
			io.CopyBuffer(w, io.NewSectionReader(f, off, 1<<62), buf)
			return
		}
		for off < committed {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), committed-off)], off)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				off += int64(n)
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return
			}
		}
		rc.Flush()
		select {
		case <-grew:
		case <-r.Context().Done():
			return
		}
	}
}

// byteRange is one satisfiable range of a Range header.
type byteRange struct{ start, length int64 }

var (
	errBadRange  = errors.New("malformed range")
	errNoOverlap = errors.New("range not satisfiable")
)

// parseRange reads a Range header (RFC 9110 14.2) against a representation
// of size bytes. It returns the satisfiable ranges, nil for no header,
// errBadRange for a malformed header and errNoOverlap when no range is
// satisfiable. Numbers are plain digits.
func parseRange(s string, size int64) ([]byteRange, error) {
	if s == "" {
		return nil, nil
	}
	spec, ok := strings.CutPrefix(s, "bytes=")
	if !ok {
		return nil, errBadRange
	}
	var ranges []byteRange
	seen := false
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		seen = true
		first, last, ok := strings.Cut(part, "-")
		if !ok {
			return nil, errBadRange
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		if first == "" {
			n, ok := digits(last)
			if !ok {
				return nil, errBadRange
			}
			if n == 0 || size == 0 {
				continue // an empty suffix is not satisfiable
			}
			n = min(n, size)
			ranges = append(ranges, byteRange{size - n, n})
			continue
		}
		start, ok := digits(first)
		if !ok {
			return nil, errBadRange
		}
		end := int64(-1)
		if last != "" {
			if end, ok = digits(last); !ok || end < start {
				return nil, errBadRange
			}
		}
		if start >= size {
			continue
		}
		if end < 0 || end >= size {
			end = size - 1
		}
		ranges = append(ranges, byteRange{start, end - start + 1})
	}
	if !seen {
		return nil, errBadRange
	}
	if len(ranges) == 0 {
		return nil, errNoOverlap
	}
	return ranges, nil
}

// digits parses a non-empty decimal number of plain digits.
func digits(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

func rangeError(w http.ResponseWriter, err error, size int64) {
	w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
	jsonError(w, http.StatusRequestedRangeNotSatisfiable, err.Error())
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Del("Content-Type")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

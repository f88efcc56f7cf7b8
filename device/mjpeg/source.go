package mjpeg

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/onair/onair/device"
	"github.com/onair/onair/media"
)

// ErrClosed is returned by ReadVideo once the Source is closed.
var ErrClosed = errors.New("MJPEG source closed")

// Options tune a Source. The zero value gives the defaults.
type Options struct {
	// Workers is how many frames are decoded at once. 0 means
	// DefaultWorkers(): one core is left for the encoder and the rest of
	// the box.
	Workers int
	// Logger hears of dropped frames; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultWorkers is the decoders a Source runs when Options.Workers is 0:
// GOMAXPROCS-1, at most 3 (a Pi 4 decodes 1080p30 on three A72 cores) and
// at least 1.
func DefaultWorkers() int {
	return max(min(runtime.GOMAXPROCS(0)-1, 3), 1)
}

// Source reads a video source that delivers MJPEG and hands on its frames
// decoded to I420, in capture order and with their capture times. Frames in
// other formats pass through (copied).
//
// A Source reads the camera on its own goroutine from NewSource until
// Close, so the camera's buffers go back to the driver at once, and decodes
// on Options.Workers goroutines in parallel: decoding 720p takes a Pi 4 core
// longer than a frame time. At most Workers frames are being decoded or
// wait, decoded, for ReadVideo; the newest frame the camera sent waits for
// a free worker. When a newer one comes first, the waiting one is dropped
// undecoded and counted (Skipped): when the decoders or the consumer fall
// behind, the oldest frames go and the queue never grows. A frame waits at
// most one frame time for a worker, so parallel decoding adds at most one
// frame time of latency while the decoders keep up; a consumer slower than
// the camera sees frames up to Workers of its own frame times old.
//
// Memory is fixed after the first frames: at most Workers+1 I420 pictures
// (Workers in flight, one with the consumer) and Workers+3 copies of camera
// frames. image/jpeg itself still allocates a new picture per decode; its
// API cannot decode into one we own.
//
// Source implements device.VideoSource; ReadVideo is for one goroutine,
// and Close may be called from another.
type Source struct {
	src     device.VideoSource
	log     *slog.Logger
	workers int
	convert convertFunc

	cancel    context.CancelFunc
	done      chan struct{} // closed by Close, wakes ReadVideo
	wake      chan struct{} // the head of queue may have changed
	goroutine sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	corrupt atomic.Uint64
	skipped atomic.Uint64

	mu sync.Mutex
	// work wakes workers when a frame waits and one more may be in
	// flight, and on Close.
	work sync.Cond
	// queue holds the frames read and not yet handed on, oldest first.
	queue []*job
	// waiting counts the jobs in queue no worker has taken; inFlight
	// those being decoded or done and not yet handed on (or dropped).
	waiting, inFlight int
	// held is the frame the consumer has until its next ReadVideo.
	held     *job
	freeJobs []*job
	freeOut  [][]byte
	closed   bool
	// jobsMade and picturesMade count allocations, for the tests of the
	// memory bound.
	jobsMade, picturesMade int
}

var _ device.VideoSource = (*Source)(nil)

// maxWaiting is how many frames may wait for a worker: one, the newest.
// More would only add latency: a worker that frees up should take the
// newest frame, not one from several frame times ago.
const maxWaiting = 1

// job is one camera frame on its way through.
type job struct {
	frame media.VideoFrame // Data is nil until decoded; then the picture
	in    []byte           // our copy of the camera's frame
	out   []byte           // the decoded picture, from freeOut
	state jobState
	err   error // why the frame failed (stateCorrupt) or reading stopped (stateFailed)
}

type jobState uint8

const (
	stateWaiting  jobState = iota // read, not taken by a worker
	stateDecoding                 // a worker has it
	stateDecoded                  // ready to hand on
	stateCorrupt                  // did not decode; dropped when it reaches the head
	stateFailed                   // not a frame: the source's error, which ends the stream
)

// convertFunc turns a camera frame (Data: our copy) into the picture to
// hand on, reusing dst. Tests wrap it to slow or order the decodes.
type convertFunc func(dec *Decoder, dst []byte, frame media.VideoFrame) ([]byte, error)

// convert decodes MJPEG and copies anything else.
func convert(dec *Decoder, dst []byte, frame media.VideoFrame) ([]byte, error) {
	if frame.Format != media.MJPEG {
		return append(dst[:0], frame.Data...), nil
	}
	return dec.decodeInto(dst, frame.Data, frame.Width, frame.Height)
}

// NewSource wraps src with the default number of workers; logger (nil:
// slog.Default()) hears of dropped frames. It starts reading src at once.
func NewSource(src device.VideoSource, logger *slog.Logger) *Source {
	return NewSourceWith(src, Options{Logger: logger})
}

// NewSourceWith wraps src as opts say. It starts reading src at once; Close
// stops that.
func NewSourceWith(src device.VideoSource, opts Options) *Source {
	return newSource(src, opts, convert)
}

func newSource(src device.VideoSource, opts Options, conv convertFunc) *Source {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Source{
		src:     src,
		log:     opts.Logger,
		workers: opts.Workers,
		convert: conv,
		cancel:  cancel,
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		queue:   make([]*job, 0, opts.Workers+maxWaiting+1),
	}
	s.work.L = &s.mu
	s.goroutine.Add(1 + opts.Workers)
	go s.read(ctx)
	for range opts.Workers {
		go s.decode()
	}
	return s
}

// ReadVideo returns the next frame that decoded, in capture order. Frames
// that did not decode (webcams send truncated ones) are counted (Dropped)
// and skipped. The returned Data is valid until the next ReadVideo or
// Close: the encoders copy a picture in Encode, and the pipeline calls
// ReadVideo again only after that, so it need not copy. An error of the
// wrapped source comes after the frames read before it, and again on every
// later call.
func (s *Source) ReadVideo(ctx context.Context) (media.VideoFrame, error) {
	s.mu.Lock()
	if s.held != nil {
		// The consumer is done with the previous picture.
		s.freeOut = append(s.freeOut, s.held.out)
		s.recycle(s.held)
		s.held = nil
	}
	for {
		if s.closed {
			s.mu.Unlock()
			return media.VideoFrame{}, ErrClosed
		}
		if len(s.queue) > 0 {
			switch head := s.queue[0]; head.state {
			case stateDecoded:
				s.popHead()
				s.inFlight--
				s.work.Signal()
				s.held = head
				frame := head.frame
				s.mu.Unlock()
				return frame, nil
			case stateCorrupt:
				s.popHead()
				s.inFlight--
				s.work.Signal()
				err, size := head.err, len(head.in)
				s.recycle(head)
				s.mu.Unlock()
				s.logCorrupt(ctx, err, size)
				s.mu.Lock()
				continue
			case stateFailed:
				s.mu.Unlock()
				return media.VideoFrame{}, head.err
			}
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-s.done:
		case <-ctx.Done():
			return media.VideoFrame{}, ctx.Err()
		}
		s.mu.Lock()
	}
}

func (s *Source) logCorrupt(ctx context.Context, err error, size int) {
	n := s.corrupt.Add(1)
	// The first one is worth a look (a camera that sends only broken
	// frames shows nothing); after that, webcams drop the odd frame as a
	// matter of course.
	level := slog.LevelDebug
	if n == 1 {
		level = slog.LevelWarn
	}
	s.log.Log(ctx, level, "dropped an MJPEG frame that does not decode", "dropped", n, "bytes", size, "error", err)
}

// read copies each camera frame into a job and queues it, until the source
// fails or Close cancels ctx. It never waits for the decoders: the camera
// gets its buffer back at once, and a frame that finds another still
// waiting for a worker pushes that one out.
func (s *Source) read(ctx context.Context) {
	defer s.goroutine.Done()
	for {
		frame, err := s.src.ReadVideo(ctx)
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		j := s.newJob()
		s.mu.Unlock()
		if err != nil {
			j.state, j.err = stateFailed, err
			s.enqueue(ctx, j)
			return
		}
		j.frame = frame
		j.frame.Data = nil
		if frame.Format == media.MJPEG {
			j.in = appendWithTables(j.in[:0], frame.Data)
		} else {
			j.in = append(j.in[:0], frame.Data...)
		}
		s.enqueue(ctx, j)
	}
}

// enqueue puts a job read from the camera at the end of the queue, first
// dropping the frame that still waits for a worker if the queue is full.
func (s *Source) enqueue(ctx context.Context, j *job) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	skipped := false
	if j.state == stateWaiting {
		if s.waiting >= maxWaiting {
			i := slices.IndexFunc(s.queue, func(q *job) bool { return q.state == stateWaiting })
			old := s.queue[i]
			s.queue = slices.Delete(s.queue, i, i+1)
			s.waiting--
			s.recycle(old)
			skipped = true
		}
		s.waiting++
		s.work.Signal()
	}
	s.queue = append(s.queue, j)
	s.mu.Unlock()
	s.notify()
	if skipped {
		n := s.skipped.Add(1)
		// Once at warning level: the box is too slow for this mode, which
		// a person can change (size, rate, workers). After that it is
		// the expected state of affairs.
		level := slog.LevelDebug
		if n == 1 {
			level = slog.LevelWarn
		}
		s.log.Log(ctx, level, "MJPEG decoding falls behind the camera: dropped a frame before decoding it",
			"skipped", n, "workers", s.workers)
	}
}

// decode is a worker: it takes the oldest waiting frame while fewer than
// Workers are in flight, decodes it into a pooled picture and marks it
// done (or corrupt, and returns the picture at once).
func (s *Source) decode() {
	defer s.goroutine.Done()
	var dec Decoder
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for !s.closed && (s.waiting == 0 || s.inFlight >= s.workers) {
			s.work.Wait()
		}
		if s.closed {
			return
		}
		j := s.queue[slices.IndexFunc(s.queue, func(q *job) bool { return q.state == stateWaiting })]
		j.state = stateDecoding
		s.waiting--
		s.inFlight++
		var out []byte
		if n := len(s.freeOut); n > 0 {
			out = s.freeOut[n-1]
			s.freeOut = s.freeOut[:n-1]
		} else {
			s.picturesMade++
		}
		in := j.frame
		in.Data = j.in
		s.mu.Unlock()

		picture, err := s.convert(&dec, out, in)

		s.mu.Lock()
		if err != nil {
			// The picture goes back at once, but the frame stays in
			// flight until it reaches the head and is counted: frames
			// that all fail, with no one reading, must not pile up.
			s.freeOut = append(s.freeOut, out)
			j.state, j.err = stateCorrupt, err
		} else {
			j.out = picture
			j.frame.Data = picture
			if j.frame.Format == media.MJPEG {
				j.frame.Format = media.I420
			}
			j.state = stateDecoded
		}
		if j == s.queue[0] {
			s.notify()
		}
	}
}

// notify wakes ReadVideo if it waits; a wake-up already pending is enough.
func (s *Source) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// newJob takes a job from the pool; s.mu is held.
func (s *Source) newJob() *job {
	if n := len(s.freeJobs); n > 0 {
		j := s.freeJobs[n-1]
		s.freeJobs = s.freeJobs[:n-1]
		return j
	}
	s.jobsMade++
	return new(job)
}

// recycle returns a job to the pool, keeping its input buffer; s.mu is
// held and the job's picture, if any, already back in freeOut.
func (s *Source) recycle(j *job) {
	*j = job{in: j.in[:0]}
	s.freeJobs = append(s.freeJobs, j)
}

// popHead removes queue[0], keeping the queue's array; s.mu is held.
func (s *Source) popHead() {
	s.queue = slices.Delete(s.queue, 0, 1)
}

// Dropped is how many frames did not decode so far (handed on neither).
func (s *Source) Dropped() uint64 { return s.corrupt.Load() }

// Skipped is how many frames were dropped undecoded because a newer frame
// came while they still waited for a worker.
func (s *Source) Skipped() uint64 { return s.skipped.Load() }

// Workers is how many frames the Source decodes at once.
func (s *Source) Workers() int { return s.workers }

// Close stops reading and decoding, waits for the goroutines, then closes
// the wrapped source. A picture ReadVideo returned stays as it is.
func (s *Source) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.mu.Lock()
		s.closed = true
		s.work.Broadcast()
		s.mu.Unlock()
		close(s.done)
		s.goroutine.Wait()
		s.closeErr = s.src.Close()
	})
	return s.closeErr
}

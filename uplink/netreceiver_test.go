package uplink

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"github.com/onair/onair/media/h264"
)

// receiverEnv, set to a host:port, makes the test binary a WHIP receiver
// instead of running tests (TestMain hands over to receiverMain). The
// network-namespace test starts it under `ip netns exec`, so that the
// uplink's packets cross a real veth pair that the kernel shapes.
const receiverEnv = "ONAIR_UPLINK_RECEIVER"

// The receiver writes the decodable pictures of every session, in order,
// to OUT/video.h264 (Annex-B) and each session's audio to OUT/audio-sID.ogg,
// where OUT is receiverOutEnv. On stdout it reports one event per line:
//
//	ready ADDR                          listening
//	session ID                          an offer was answered
//	frame ID KEY BYTES PACKETS AT       a decodable picture (KEY 0 or 1),
//	                                    complete at AT (Unix time, ns)
//	drop ID                             a picture that cannot be decoded
//	gaveup ID                           a video packet never arrived, not even repaired
//
// The end of its stdin ends it, with its files closed.
const receiverOutEnv = "ONAIR_UPLINK_RECEIVER_OUT"

const (
	// lossWait is how long a missing video packet is waited for (NACK and
	// RTX may bring it) before the picture is given up, as a browser's
	// jitter buffer does.
	lossWait = 500 * time.Millisecond
	// keyframeWait is how long a gap holds back a complete keyframe
	// behind it: about a browser's jitter-buffer delay, and time for a
	// NACK and a second one to be answered on a short path.
	keyframeWait = 150 * time.Millisecond
	// pliInterval spaces the receiver's keyframe requests.
	pliInterval = 300 * time.Millisecond
	// A missing packet is asked for again every nackInterval, at most
	// maxNacks times: libwebrtc's receiver with its default round-trip
	// time of 100 ms and its retry limit.
	nackInterval = 100 * time.Millisecond
	maxNacks     = 10
	// readSlice bounds one read so that overdue gaps are noticed while the
	// stream is silent.
	readSlice = 20 * time.Millisecond
)

// netReceiver plays a media server (or a browser) at the far end of the
// uplink: it answers WHIP offers with pion (receiver reports and TWCC
// feedback, as Chromium sends), puts the video packets back in order, asks
// for missing ones (NACK) and waits for their repair, and hands on only the
// pictures a decoder could decode: after a loss it asks for a keyframe
// (PLI) and drops pictures until one comes. A complete keyframe behind a
// gap is handed on once the gap is keyframeWait old, as a browser does:
// libwebrtc's packet buffer assembles an H.264 keyframe whatever is missing
// before it, and its frame buffer decodes it when it is due, dropping the
// older pictures still incomplete then, without asking for a keyframe.
//
// It sends its own NACKs rather than pion's generator's: that one never
// learns of packets repaired over RTX (they bypass the media stream's
// interceptors in pion v4.2) and asks for them again every 100 ms while
// they are in its window, which no browser does.
type netReceiver struct {
	api    *webrtc.API
	events *eventWriter
	dir    string

	mu       sync.Mutex
	video    *os.File
	audio    map[string]*oggwriter.OggWriter
	sessions []*webrtc.PeerConnection
	wg       sync.WaitGroup
}

// eventWriter writes whole event lines.
type eventWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (e *eventWriter) send(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.w, format+"\n", args...)
	e.w.Flush()
}

// receiverMain runs the receiver until stdin ends; its result is the exit
// code.
func receiverMain() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		return 1
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return fail(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return fail(err)
	}
	if err := webrtc.ConfigureTWCCSender(m, ir); err != nil {
		return fail(err)
	}
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	r := &netReceiver{
		api:    webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)),
		events: &eventWriter{w: bufio.NewWriter(os.Stdout)},
		audio:  map[string]*oggwriter.OggWriter{},
		dir:    os.Getenv(receiverOutEnv),
	}
	var err error
	if r.video, err = os.Create(filepath.Join(r.dir, "video.h264")); err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", os.Getenv(receiverEnv))
	if err != nil {
		return fail(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /whip", r.offer)
	mux.HandleFunc("DELETE /whip/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	r.events.send("ready %s", ln.Addr())

	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Close()
	<-served
	r.mu.Lock()
	sessions := r.sessions
	r.mu.Unlock()
	for _, pc := range sessions {
		pc.Close()
	}
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := []error{r.video.Close()}
	for _, w := range r.audio {
		errs = append(errs, w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	return 0
}

func (r *netReceiver) writeVideo(au []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.video.Write(au); err != nil {
		fmt.Fprintln(os.Stderr, "receiver: write video:", err)
	}
}

func (r *netReceiver) writeAudio(id string, pkt *rtp.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.audio[id]
	if w == nil {
		var err error
		// One file per session: a new session's RTP timestamps start
		// elsewhere, which one Ogg stream cannot carry.
		if w, err = oggwriter.New(filepath.Join(r.dir, "audio-s"+id+".ogg"), 48000, 2); err != nil {
			fmt.Fprintln(os.Stderr, "receiver: open audio:", err)
			return
		}
		r.audio[id] = w
	}
	if err := w.WriteRTP(pkt); err != nil {
		fmt.Fprintln(os.Stderr, "receiver: write audio:", err)
	}
}

func (r *netReceiver) offer(w http.ResponseWriter, req *http.Request) {
	offer, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pc, err := r.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	r.mu.Lock()
	r.sessions = append(r.sessions, pc)
	id := strconv.Itoa(len(r.sessions))
	r.mu.Unlock()
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		r.wg.Add(1)
		defer r.wg.Done()
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			r.readVideo(id, pc, tr)
			return
		}
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			r.writeAudio(id, pkt)
		}
	})
	if err := answerOffer(pc, string(offer)); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.events.send("session %s", id)
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/whip/"+id)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, pc.LocalDescription().SDP)
}

func (r *netReceiver) readVideo(id string, pc *webrtc.PeerConnection, tr *webrtc.TrackRemote) {
	var lastPLI time.Time
	askKeyframe := func() {
		if time.Since(lastPLI) < pliInterval {
			return
		}
		lastPLI = time.Now()
		_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(tr.SSRC())}})
	}
	ra := &reassembler{
		picture: func(au []byte, decodable bool, packets int) {
			if !decodable {
				r.events.send("drop %s", id)
				askKeyframe()
				return
			}
			r.writeVideo(au)
			key := 0
			if h264.Inspect(au).IDR {
				key = 1
			}
			// Stamped here, not when the test reads the line: a busy
			// test process must not bunch the pictures up into freezes.
			r.events.send("frame %s %d %d %d %d", id, key, len(au), packets, time.Now().UnixNano())
		},
		gaveUp: func() {
			r.events.send("gaveup %s", id)
			askKeyframe()
		},
		skipped: func(lost int) {
			for range lost {
				r.events.send("gaveup %s", id)
			}
			r.events.send("drop %s", id)
		},
		nack: func(missing []uint16) {
			_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{
				MediaSSRC: uint32(tr.SSRC()), Nacks: rtcp.NackPairsFromSequenceNumbers(missing)}})
		},
	}
	for {
		_ = tr.SetReadDeadline(time.Now().Add(readSlice))
		pkt, _, err := tr.ReadRTP()
		var netErr net.Error
		switch {
		case errors.As(err, &netErr) && netErr.Timeout():
		case err != nil:
			return
		default:
			ra.push(pkt, time.Now())
		}
		ra.flush(time.Now())
	}
}

// reassembler puts video packets back in sequence order (retransmissions
// arrive late), waits up to lossWait for a missing one, and rebuilds access
// units. A picture is decodable when none of its packets is missing and no
// picture since the last complete keyframe was lost.
type reassembler struct {
	picture func(au []byte, decodable bool, packets int)
	gaveUp  func()
	nack    func(missing []uint16)
	// skipped: lost packets and the pictures they broke were given up
	// for a complete keyframe.
	skipped func(lost int)

	started bool
	next    uint64 // extended sequence number to hand on next
	highest uint64
	waiting map[uint64]*rtp.Packet
	// resync skips to the end of an access unit that lost a packet.
	resync bool
	// broken: a picture was lost since the last keyframe.
	broken  bool
	depack  codecs.H264Packet
	au      []byte
	packets int
	// missing are the packets known to be missing: since when, and when
	// and how often they were asked for.
	missing map[uint64]*nackState
	asks    []uint16
}

type nackState struct {
	since, last time.Time
	count       int
}

func (r *reassembler) push(p *rtp.Packet, now time.Time) {
	if !r.started {
		// Far from zero, so that sequence numbers before the first one
		// (reordered) stay representable.
		r.next = uint64(p.SequenceNumber) + 1<<32
		r.highest = r.next
		r.waiting = map[uint64]*rtp.Packet{}
		r.missing = map[uint64]*nackState{}
		r.started = true
		r.broken = true // nothing is decodable before the first keyframe
	}
	ext := uint64(int64(r.highest) + int64(int16(p.SequenceNumber-uint16(r.highest))))
	if ext < r.next {
		return // a duplicate, or a repair that came after the picture was given up
	}
	for seq := r.highest + 1; seq < ext; seq++ {
		r.missing[seq] = &nackState{since: now}
	}
	delete(r.missing, ext)
	r.highest = max(r.highest, ext)
	if _, dup := r.waiting[ext]; !dup {
		r.waiting[ext] = p
	}
}

// askMissing sends one NACK for the packets still missing whose last
// request is nackInterval old.
func (r *reassembler) askMissing(now time.Time) {
	r.asks = r.asks[:0]
	for seq, st := range r.missing {
		switch {
		case seq < r.next:
			delete(r.missing, seq)
		case st.count < maxNacks && now.Sub(st.last) >= nackInterval:
			st.last = now
			st.count++
			r.asks = append(r.asks, uint16(seq))
		}
	}
	if len(r.asks) > 0 {
		slices.Sort(r.asks) // pairs of neighbours are what NACK packs tightly
		r.nack(r.asks)
	}
}

func (r *reassembler) flush(now time.Time) {
	if !r.started {
		return
	}
	defer r.askMissing(now)
	for {
		if p, ok := r.waiting[r.next]; ok {
			delete(r.waiting, r.next)
			r.next++
			r.deliver(p)
			continue
		}
		if len(r.waiting) == 0 {
			return
		}
		// A packet is waited for lossWait from when it was found missing
		// (a later one arrived), not from when the pictures before it were
		// done: after a burst of losses every gap expires at once, and the
		// stream moves on to the next keyframe, as a browser's does.
		if st := r.missing[r.next]; st != nil && now.Sub(st.since) < lossWait {
			key, ok := r.keyframeAhead()
			if !ok || now.Sub(st.since) < keyframeWait {
				return
			}
			r.skipTo(key)
			continue
		}
		// Give up on every packet up to the first one that is here.
		first := r.highest
		for seq := range r.waiting {
			first = min(first, seq)
		}
		for ; r.next < first; r.next++ {
			r.gaveUp()
		}
		if len(r.au) > 0 || r.packets > 0 {
			r.picture(nil, false, r.packets)
		}
		r.au, r.packets = r.au[:0], 0
		r.depack = codecs.H264Packet{}
		r.resync, r.broken = true, true
	}
}

// keyframeAhead finds the first packet of a complete keyframe waiting
// behind a gap: one that starts with an SPS (x264 repeats SPS and PPS before
// every keyframe, and rtppack sends each as its own packet) and whose
// packets up to the marker are all here.
func (r *reassembler) keyframeAhead() (uint64, bool) {
	var start uint64
	found := false
	for seq, p := range r.waiting {
		if len(p.Payload) == 0 || h264.Type(p.Payload) != h264.TypeSPS || (found && seq > start) {
			continue
		}
		for next := seq; ; next++ {
			q, here := r.waiting[next]
			if !here {
				break
			}
			if q.Marker {
				start, found = seq, true
				break
			}
		}
	}
	return start, found
}

// skipTo gives up everything before the keyframe that starts at key; no
// keyframe is asked for: there is one.
func (r *reassembler) skipTo(key uint64) {
	lost := 0
	for ; r.next < key; r.next++ {
		if _, here := r.waiting[r.next]; here {
			delete(r.waiting, r.next)
		} else {
			lost++
		}
	}
	r.skipped(lost)
	r.au, r.packets = r.au[:0], 0
	r.depack = codecs.H264Packet{}
	r.resync, r.broken = false, true
}

func (r *reassembler) deliver(p *rtp.Packet) {
	if r.resync {
		// The rest of a picture that lost a packet; the next one starts
		// after its marker.
		r.resync = !p.Marker
		return
	}
	r.packets++
	nal, err := r.depack.Unmarshal(p.Payload)
	if err != nil {
		r.picture(nil, false, r.packets)
		r.au, r.packets = r.au[:0], 0
		r.depack = codecs.H264Packet{}
		r.resync, r.broken = !p.Marker, true
		return
	}
	r.au = append(r.au, nal...)
	if !p.Marker {
		return
	}
	if info := h264.Inspect(r.au); info.IDR && info.SPS && info.PPS {
		r.broken = false
	}
	r.picture(r.au, !r.broken, r.packets)
	r.au, r.packets = r.au[:0], 0
}

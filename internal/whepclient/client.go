// Package whepclient is a WHEP viewer written with pion: it plays the part
// of a browser in end-to-end tests and in the bench/ load client. It offers
// to receive H.264 and Opus, sends receiver reports, NACKs and TWCC like a
// browser, and records what it gets.
package whepclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	"github.com/onair/onair/media/h264"
)

// Options tune the client.
type Options struct {
	// Token is sent as Authorization: Bearer when set.
	Token string
	// RecordH264 keeps the received video as an Annex-B stream (H264()).
	RecordH264 bool
	// PLIOnFirstPacket sends one PLI when the first video packet arrives,
	// as browsers do when they have nothing to decode yet.
	PLIOnFirstPacket bool
	// HTTP is the client for signalling; nil means a client with a 10 s timeout.
	HTTP *http.Client
	// DropVideoEvery drops every Nth video RTP packet on arrival (first
	// transmission only, before the NACK generator sees it), to play a lossy
	// Wi-Fi viewer. Frames are then put together in sequence order with a
	// jitter buffer, so retransmissions fill the gaps.
	DropVideoEvery int
}

// Stats is what the client has received.
type Stats struct {
	Connected     time.Time
	FirstRTP      time.Time // first video RTP packet
	FirstKeyframe time.Time
	VideoFrames   int
	Keyframes     int
	AudioPackets  int
	// FirstFrameIsKeyframe is true when the first video frame was an IDR
	// with SPS and PPS in front: decodable on its own.
	FirstFrameIsKeyframe bool
	VideoPacketsLost     int
	// AudioNonSilent is true once a non-silent Opus packet arrived (a
	// packet longer than Opus's few-byte silence frames).
	AudioNonSilent bool
	// KeyframeTimestamps are the RTP timestamps (90 kHz) of keyframes.
	KeyframeTimestamps []uint32
	// LastFrame is when the latest frame was complete; FrameGapsMS counts
	// the gaps between complete frames in whole milliseconds (index = gap,
	// the last bucket holds everything longer): how evenly pictures arrive.
	LastFrame   time.Time
	FrameGapsMS [1001]int
	// VideoPackets counts the video RTP packets that arrived.
	VideoPackets int
	// VideoReports and AudioReports are the sender's reports (RTCP SR)
	// about each stream, in the order they came.
	VideoReports, AudioReports []SenderReport
}

// SenderReport is one RTCP sender report as the client saw it.
type SenderReport struct {
	NTPTime         uint64 // NTP, 32.32 fixed point seconds
	RTPTime         uint32 // the stream's RTP clock at NTPTime
	Packets, Octets uint32 // the sender's counts
}

// Client is one connected viewer.
type Client struct {
	pc       *webrtc.PeerConnection
	http     *http.Client
	location string
	token    string
	opt      Options

	mu      sync.Mutex
	stats   Stats
	h264    bytes.Buffer
	frameCh chan struct{}
	wg      sync.WaitGroup
	videoSS webrtc.SSRC
	drops   *dropper
}

// Dial offers to receive from the WHEP endpoint at url and waits for the
// answer. It returns once signalling is done; media follows.
func Dial(ctx context.Context, url string, opt Options) (*Client, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	drops := &dropper{every: opt.DropVideoEvery}
	if opt.DropVideoEvery > 0 {
		// First in the registry: closest to the network on the read path.
		ir.Add(drops)
	}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	c := &Client{pc: pc, http: opt.HTTP, token: opt.Token, opt: opt, frameCh: make(chan struct{}, 1), drops: drops}
	if c.http == nil {
		c.http = &http.Client{Timeout: 10 * time.Second}
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			pc.Close()
			return nil, err
		}
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			c.mu.Lock()
			c.stats.Connected = time.Now()
			c.mu.Unlock()
		}
	})
	pc.OnTrack(func(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		c.wg.Add(2)
		defer c.wg.Done()
		go func() { defer c.wg.Done(); c.readReports(track, receiver) }()
		if track.Kind() == webrtc.RTPCodecTypeVideo {
			c.readVideo(track)
		} else {
			c.readAudio(track)
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		pc.Close()
		return nil, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		pc.Close()
		return nil, err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		pc.Close()
		return nil, ctx.Err()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		pc.Close()
		return nil, err
	}
	req.Header.Set("Content-Type", "application/sdp")
	if opt.Token != "" {
		req.Header.Set("Authorization", "Bearer "+opt.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("post offer: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		pc.Close()
		return nil, &StatusError{Code: resp.StatusCode, Body: string(body)}
	}
	c.location = resp.Header.Get("Location")
	if strings.HasPrefix(c.location, "/") {
		base := url[:strings.Index(url[len("http://"):], "/")+len("http://")]
		c.location = base + c.location
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		pc.Close()
		return nil, fmt.Errorf("set answer: %w", err)
	}
	return c, nil
}

// StatusError is a non-201 answer to the offer.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string { return fmt.Sprintf("whep offer: HTTP %d: %s", e.Code, e.Body) }

func (c *Client) readVideo(track *webrtc.TrackRemote) {
	c.mu.Lock()
	c.videoSS = track.SSRC()
	c.mu.Unlock()
	// Frames are put together by the marker bit rather than with pion's
	// samplebuilder, which holds a frame back until the next one starts:
	// the last frame before a stop must count too.
	var depacketizer codecs.H264Packet
	var au []byte
	var sb *samplebuilder.SampleBuilder
	if c.opt.DropVideoEvery > 0 {
		sb = samplebuilder.New(512, &codecs.H264Packet{}, 90000)
	}
	var lastSeq uint16
	first := true
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.stats.VideoPackets++
		if first {
			c.stats.FirstRTP = time.Now()
		} else if gap := pkt.SequenceNumber - lastSeq; gap > 1 && gap < 1000 && c.opt.DropVideoEvery == 0 {
			c.stats.VideoPacketsLost += int(gap - 1)
		}
		c.mu.Unlock()
		if first && c.opt.PLIOnFirstPacket {
			c.SendPLI()
		}
		first = false
		lastSeq = pkt.SequenceNumber
		if sb != nil {
			sb.Push(pkt)
			for s := sb.Pop(); s != nil; s = sb.Pop() {
				c.frame(s.Data, s.PacketTimestamp)
			}
			continue
		}
		nal, err := depacketizer.Unmarshal(pkt.Payload)
		if err != nil {
			au = au[:0]
			continue
		}
		au = append(au, nal...)
		if pkt.Marker && len(au) > 0 {
			c.frame(au, pkt.Timestamp)
			au = au[:0]
		}
	}
}

func (c *Client) frame(au []byte, ts uint32) {
	info := h264.Inspect(au)
	c.mu.Lock()
	if c.stats.VideoFrames == 0 {
		c.stats.FirstFrameIsKeyframe = info.IDR && info.SPS && info.PPS
	}
	c.stats.VideoFrames++
	now := time.Now()
	if !c.stats.LastFrame.IsZero() {
		c.stats.FrameGapsMS[min(int(now.Sub(c.stats.LastFrame)/time.Millisecond), len(c.stats.FrameGapsMS)-1)]++
	}
	c.stats.LastFrame = now
	if info.IDR {
		c.stats.Keyframes++
		c.stats.KeyframeTimestamps = append(c.stats.KeyframeTimestamps, ts)
		if c.stats.FirstKeyframe.IsZero() {
			c.stats.FirstKeyframe = time.Now()
		}
	}
	if c.opt.RecordH264 {
		c.h264.Write(au)
	}
	c.mu.Unlock()
	select {
	case c.frameCh <- struct{}{}:
	default:
	}
}

func (c *Client) readAudio(track *webrtc.TrackRemote) {
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.stats.AudioPackets++
		if len(pkt.Payload) > 10 {
			c.stats.AudioNonSilent = true
		}
		c.mu.Unlock()
	}
}

// readReports keeps the sender reports about track's stream.
func (c *Client) readReports(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	for {
		packets, _, err := receiver.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range packets {
			sr, ok := p.(*rtcp.SenderReport)
			if !ok || sr.SSRC != uint32(track.SSRC()) {
				continue
			}
			r := SenderReport{NTPTime: sr.NTPTime, RTPTime: sr.RTPTime, Packets: sr.PacketCount, Octets: sr.OctetCount}
			c.mu.Lock()
			if track.Kind() == webrtc.RTPCodecTypeVideo {
				c.stats.VideoReports = append(c.stats.VideoReports, r)
			} else {
				c.stats.AudioReports = append(c.stats.AudioReports, r)
			}
			c.mu.Unlock()
		}
	}
}

// SendPLI asks the sender for a keyframe.
func (c *Client) SendPLI() {
	c.mu.Lock()
	ssrc := c.videoSS
	c.mu.Unlock()
	_ = c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(ssrc)}})
}

// Stats returns what was received so far.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	st.KeyframeTimestamps = append([]uint32(nil), c.stats.KeyframeTimestamps...)
	st.VideoReports = append([]SenderReport(nil), c.stats.VideoReports...)
	st.AudioReports = append([]SenderReport(nil), c.stats.AudioReports...)
	return st
}

// H264 returns the recorded video stream (Options.RecordH264).
func (c *Client) H264() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.h264.Bytes())
}

// WaitVideoFrames waits until at least n video frames arrived.
func (c *Client) WaitVideoFrames(ctx context.Context, n int) error {
	for {
		if c.Stats().VideoFrames >= n {
			return nil
		}
		select {
		case <-c.frameCh:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d video frames, have %d: %w", n, c.Stats().VideoFrames, ctx.Err())
		}
	}
}

// RemoteSDP is the server's answer.
func (c *Client) RemoteSDP() string {
	if d := c.pc.RemoteDescription(); d != nil {
		return d.SDP
	}
	return ""
}

// Location is the session URL from the answer.
func (c *Client) Location() string { return c.location }

// Close sends DELETE for the session and closes the connection.
func (c *Client) Close() error {
	var errs []error
	if c.location != "" {
		req, _ := http.NewRequest(http.MethodDelete, c.location, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		if resp, err := c.http.Do(req); err != nil {
			errs = append(errs, err)
		} else {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs = append(errs, fmt.Errorf("delete session: HTTP %d", resp.StatusCode))
			}
		}
	}
	errs = append(errs, c.pc.Close())
	c.wg.Wait()
	return errors.Join(errs...)
}

// Dropped is how many video packets DropVideoEvery threw away.
func (c *Client) Dropped() int { return int(c.drops.dropped.Load()) }

// dropper is an interceptor that loses every Nth packet of the H.264 stream
// the first time it arrives; retransmissions come on the RTX stream and pass.
type dropper struct {
	interceptor.NoOp
	every   int
	dropped atomic.Int64
}

func (d *dropper) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	if !strings.EqualFold(info.MimeType, webrtc.MimeTypeH264) {
		return reader
	}
	var n int
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			size, attr, err := reader.Read(b, a)
			if err != nil {
				return size, attr, err
			}
			n++
			if n%d.every == 0 && n > 50 { // keep the first keyframe whole
				d.dropped.Add(1)
				continue
			}
			return size, attr, nil
		}
	})
}

// Build makes the interceptor for a connection (interceptor.Factory).
func (d *dropper) NewInterceptor(string) (interceptor.Interceptor, error) { return d, nil }

package web

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/onair/onair/broadcast"
)

// NewRegistry makes the /metrics registry: the box's metrics (docs/metrics.md)
// plus the Go runtime and process collectors.
func NewRegistry(opt Options) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&boxCollector{opt: opt},
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// UplinkStats are the uplink's figures for /metrics.
type UplinkStats struct {
	BitrateKbps, EstimateKbps, Failures int
	// FrameDivisor is n when only every n-th picture is sent (0 or 1: all).
	FrameDivisor int
}

// boxCollector reads the hub, the pipeline and the viewers at scrape time, so
// nothing on the media path updates a metric.
type boxCollector struct{ opt Options }

var (
	descState          = prometheus.NewDesc("onair_state", "1 for the broadcast's current state, 0 for the others.", []string{"state"}, nil)
	descViewers        = prometheus.NewDesc("onair_viewers", "Viewers connected now.", nil, nil)
	descViewersPeak    = prometheus.NewDesc("onair_viewers_peak", "Most viewers at once during the current or last broadcast.", nil, nil)
	descFPS            = prometheus.NewDesc("onair_video_fps", "Encoded video frames per second over the last second.", nil, nil)
	descBitrate        = prometheus.NewDesc("onair_video_bitrate_kbps", "Encoded video bitrate over the last second, kbit/s.", nil, nil)
	descDropped        = prometheus.NewDesc("onair_frames_dropped_total", "Samples dropped because a consumer was too slow, by sink.", []string{"sink"}, nil)
	descKeyframes      = prometheus.NewDesc("onair_keyframes_forced_total", "Keyframes forced by joins, PLI/FIR and going live.", nil, nil)
	descAudioLevel     = prometheus.NewDesc("onair_audio_level_dbfs", "Audio level over the last second, dBFS.", []string{"kind"}, nil)
	descUplinkUp       = prometheus.NewDesc("onair_uplink_up", "1 when the WHIP uplink is sending.", nil, nil)
	descUplinkBitrate  = prometheus.NewDesc("onair_uplink_bitrate_kbps", "Encoder bitrate the uplink's congestion control chose, kbit/s (0 while off).", nil, nil)
	descUplinkEstimate = prometheus.NewDesc("onair_uplink_estimate_kbps", "Latest congestion estimate of the uplink's path, kbit/s (0 without one).", nil, nil)
	descUplinkFrames   = prometheus.NewDesc("onair_uplink_frame_divisor", "1 at the full frame rate; n when only every n-th picture is sent because even the minimum bitrate does not fit.", nil, nil)
	descUplinkFailures = prometheus.NewDesc("onair_uplink_failures", "Failed uplink attempts since media last flowed steadily.", nil, nil)
	descRecordingState = prometheus.NewDesc("onair_recording_state", "1 for the recorder's current state (off, idle, recording, paused, error), 0 for the others.", []string{"state"}, nil)
	descRecordingBytes = prometheus.NewDesc("onair_recording_bytes_total", "Bytes written to replay recordings.", nil, nil)
	descTemperature    = prometheus.NewDesc("onair_board_temperature_celsius", "SoC temperature.", nil, nil)
	descThrottled      = prometheus.NewDesc("onair_board_throttled", "1 while the Pi's firmware reports under-voltage or throttling now.", nil, nil)
	descStorageFree    = prometheus.NewDesc("onair_storage_free_bytes", "Free bytes on the data partition.", nil, nil)
)

func (c *boxCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descViewers, descViewersPeak, descFPS, descBitrate, descDropped,
		descKeyframes, descAudioLevel, descUplinkUp, descUplinkBitrate, descUplinkEstimate, descUplinkFailures, descUplinkFrames,
		descRecordingState, descRecordingBytes, descStorageFree, descTemperature, descThrottled} {
		ch <- d
	}
}

func (c *boxCollector) Collect(ch chan<- prometheus.Metric) {
	doc := c.opt.Status()
	for _, st := range broadcast.States {
		v := 0.0
		if string(st) == doc.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, string(st))
	}
	ch <- prometheus.MustNewConstMetric(descViewers, prometheus.GaugeValue, float64(doc.Viewers))
	ch <- prometheus.MustNewConstMetric(descViewersPeak, prometheus.GaugeValue, float64(doc.ViewersPeak))
	ch <- prometheus.MustNewConstMetric(descFPS, prometheus.GaugeValue, doc.Video.FPS)
	ch <- prometheus.MustNewConstMetric(descBitrate, prometheus.GaugeValue, doc.Video.BitrateKbps)
	counters := c.opt.Hub.Counters()
	for sink, n := range counters.Dropped {
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(n), sink)
	}
	ch <- prometheus.MustNewConstMetric(descKeyframes, prometheus.CounterValue, float64(counters.KeyframesForced))
	ch <- prometheus.MustNewConstMetric(descAudioLevel, prometheus.GaugeValue, doc.Audio.PeakDBFS, "peak")
	ch <- prometheus.MustNewConstMetric(descAudioLevel, prometheus.GaugeValue, doc.Audio.RMSDBFS, "rms")
	up := 0.0
	if doc.Uplink.State == "up" {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descUplinkUp, prometheus.GaugeValue, up)
	var us UplinkStats
	if c.opt.Uplink != nil {
		us = c.opt.Uplink()
	}
	ch <- prometheus.MustNewConstMetric(descUplinkBitrate, prometheus.GaugeValue, float64(us.BitrateKbps))
	ch <- prometheus.MustNewConstMetric(descUplinkEstimate, prometheus.GaugeValue, float64(us.EstimateKbps))
	ch <- prometheus.MustNewConstMetric(descUplinkFailures, prometheus.GaugeValue, float64(us.Failures))
	ch <- prometheus.MustNewConstMetric(descUplinkFrames, prometheus.GaugeValue, float64(max(us.FrameDivisor, 1)))
	for _, st := range []string{"off", "idle", "recording", "paused", "error"} {
		v := 0.0
		if st == doc.Recording.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descRecordingState, prometheus.GaugeValue, v, st)
	}
	var recorded uint64
	if c.opt.RecordingBytes != nil {
		recorded = c.opt.RecordingBytes()
	}
	ch <- prometheus.MustNewConstMetric(descRecordingBytes, prometheus.CounterValue, float64(recorded))
	ch <- prometheus.MustNewConstMetric(descTemperature, prometheus.GaugeValue, doc.Board.TemperatureC)
	throttled := 0.0
	if doc.Board.Throttled {
		throttled = 1
	}
	ch <- prometheus.MustNewConstMetric(descThrottled, prometheus.GaugeValue, throttled)
	ch <- prometheus.MustNewConstMetric(descStorageFree, prometheus.GaugeValue, float64(doc.StorageFreeMB)*1024*1024)
}

package broadcast

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkFanOut measures one sample going out to N viewers: Publish plus
// each viewer taking it from its queue. Reported per sample per viewer.
func BenchmarkFanOut(b *testing.B) {
	for _, viewers := range []int{1, 10, 50, 100} {
		b.Run(fmt.Sprintf("viewers=%d", viewers), func(b *testing.B) {
			hub := New(Options{})
			sinks := make([]*Sink, viewers)
			for i := range sinks {
				sinks[i] = hub.AddSink(SinkOptions{Name: "whep"})
			}
			done := make(chan struct{})
			go func() {
				hub.GoLive(context.Background(), LiveOptions{})
				close(done)
			}()
			for st, _ := hub.Status(); st.State != GoingLive; st, _ = hub.Status() {
				time.Sleep(time.Millisecond)
			}
			hub.Publish(keyframe(0, true))
			<-done
			ctx := context.Background()
			for _, s := range sinks {
				s.Next(ctx)
			}
			sample := delta(0)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				hub.Publish(sample)
				for _, s := range sinks {
					if _, err := s.Next(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(viewers), "ns/sample/viewer")
			for _, s := range sinks {
				s.Close()
			}
		})
	}
}

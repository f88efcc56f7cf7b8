package whep

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Packets from many writers to many destinations all arrive, whole and in
// order per destination, with GSO and without, over IPv4 and IPv6 sockets.
func TestBatchConnDelivers(t *testing.T) {
	for _, tc := range []struct {
		name, network, listen, dest string
		gso                         bool
	}{
		{"dual-stack/gso", "udp", "[::]:0", "127.0.0.1", true},
		{"dual-stack/plain", "udp", "[::]:0", "127.0.0.1", false},
		{"ipv4/gso", "udp4", "127.0.0.1:0", "127.0.0.1", true},
		{"ipv6/gso", "udp6", "[::1]:0", "::1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := net.ListenPacket(tc.network, tc.listen)
			if err != nil {
				t.Skip(err)
			}
			c, err := newBatchConn(pc.(*net.UDPConn), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.gso.Store(tc.gso)
			const writers, perWriter = 8, 400
			type receiver struct {
				conn *net.UDPConn
				got  [][]byte
			}
			var receivers []*receiver
			var wg sync.WaitGroup
			for range writers {
				conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(tc.dest)})
				if err != nil {
					t.Fatal(err)
				}
				conn.SetReadBuffer(8 << 20)
				defer conn.Close()
				r := &receiver{conn: conn}
				receivers = append(receivers, r)
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 65536)
					for len(r.got) < perWriter {
						conn.SetReadDeadline(time.Now().Add(5 * time.Second))
						n, err := conn.Read(buf)
						if err != nil {
							return
						}
						r.got = append(r.got, bytes.Clone(buf[:n]))
					}
				}()
			}
			// Each writer sends pictures of nine 1228-byte packets and a
			// shorter last one, with audio-sized packets in between.
			var writersDone sync.WaitGroup
			for w, r := range receivers {
				to := r.conn.LocalAddr().(*net.UDPAddr).AddrPort()
				writersDone.Add(1)
				go func() {
					defer writersDone.Done()
					for i := range perWriter {
						size := 1228
						switch {
						case i%10 == 9:
							size = 700
						case i%7 == 3:
							size = 120
						}
						p := bytes.Repeat([]byte{byte(w)}, size)
						binary.BigEndian.PutUint32(p, uint32(i))
						if _, err := c.WriteToAddrPort(p, to); err != nil {
							t.Error(err)
							return
						}
						if i%50 == 0 {
							time.Sleep(time.Millisecond)
						}
					}
				}()
			}
			writersDone.Wait()
			wg.Wait()
			for w, r := range receivers {
				if len(r.got) != perWriter {
					t.Fatalf("destination %d got %d of %d packets", w, len(r.got), perWriter)
				}
				for i, p := range r.got {
					if binary.BigEndian.Uint32(p) != uint32(i) || p[len(p)-1] != byte(w) {
						t.Fatalf("destination %d: packet %d out of order or mixed up", w, i)
					}
				}
			}
			if n := c.failed.Load(); n != 0 {
				t.Fatalf("%d packets refused", n)
			}
			switch {
			case tc.gso && !c.gso.Load():
				t.Log("this kernel refused UDP GSO: every packet went as its own datagram")
			case tc.gso && c.segmented.Load() == 0:
				t.Fatal("no GSO send: equal-sized packets to one destination were never put together")
			case !tc.gso && c.segmented.Load() != 0:
				t.Fatal("GSO used while off")
			}
		})
	}
}

// The plan keeps a destination's packets in order and puts runs of equal
// size (plus one shorter) into one GSO message, whatever lies between them.
func TestSendPlanGroups(t *testing.T) {
	a := netip.MustParseAddrPort("127.0.0.1:1000")
	b := netip.MustParseAddrPort("127.0.0.1:2000")
	var batch packetBatch
	for _, q := range []struct {
		to netip.AddrPort
		n  int
	}{{a, 1228}, {b, 1228}, {a, 1228}, {b, 100}, {a, 1228}, {a, 500}, {a, 1228}, {b, 1228}, {b, 1228}} {
		batch.pkts = append(batch.pkts, queuedPacket{off: int32(len(batch.data)), n: int32(q.n), addr: q.to})
		batch.data = append(batch.data, make([]byte, q.n)...)
	}
	var p sendPlan
	p.group(&batch, true)
	var got [][]int32
	for _, g := range p.groups {
		var members []int32
		for i := g.first; i >= 0; i = p.next[i] {
			members = append(members, i)
		}
		got = append(got, members)
	}
	want := [][]int32{{0, 2, 4, 5}, {1, 3}, {6}, {7, 8}}
	if len(got) != len(want) {
		t.Fatalf("groups %v, want %v", got, want)
	}
	for k := range want {
		if !equal(got[k], want[k]) {
			t.Fatalf("groups %v, want %v", got, want)
		}
	}
	p.build(&batch, 10)
	if len(p.msgs) != 4 || p.msgs[0].Hdr.Iovlen != 4 || p.msgs[2].Hdr.Controllen != 0 || p.msgs[0].Hdr.Controllen == 0 {
		t.Fatalf("messages not as planned: %+v", p.msgs)
	}
	p.group(&batch, false)
	if len(p.groups) != len(batch.pkts) {
		t.Fatalf("without GSO: %d messages for %d packets", len(p.groups), len(batch.pkts))
	}
}

func equal(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// loopbackBatchConn is a batchConn on an IPv4 loopback port.
func loopbackBatchConn(t *testing.T) *batchConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := newBatchConn(pc.(*net.UDPConn), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// After Close writes fail, and a second Close is harmless (the ICE mux
// closes the socket it was given, and so does the server).
func TestBatchConnClose(t *testing.T) {
	c := loopbackBatchConn(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteToAddrPort([]byte("x"), netip.MustParseAddrPort("127.0.0.1:9")); err == nil {
		t.Fatal("write after close succeeded")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// A held round's packets wait for its Release, unless the queue fills: then
// they leave anyway, so a round larger than the queue cannot stall itself.
func TestBatchConnHoldsARound(t *testing.T) {
	c := loopbackBatchConn(t)
	defer c.Close()
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	rx.SetReadBuffer(8 << 20)
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 2048)
	read := func(within time.Duration) bool {
		rx.SetReadDeadline(time.Now().Add(within))
		_, err := rx.Read(buf)
		return err == nil
	}

	c.Hold()
	for range 3 {
		if _, err := c.WriteToAddrPort(make([]byte, 1200), to); err != nil {
			t.Fatal(err)
		}
	}
	if read(300 * time.Millisecond) {
		t.Fatal("a packet left while its round was held")
	}
	c.Release()
	for i := range 3 {
		if !read(5 * time.Second) {
			t.Fatalf("packet %d did not leave after the round ended", i)
		}
	}

	// More than the queue holds, in one held round from one writer; read as
	// they come (the socket's buffer may hold fewer than all of them).
	const n = 2 * maxQueued / 1200
	var got atomic.Int64
	go func() {
		for read(10 * time.Second) {
			got.Add(1)
		}
	}()
	c.Hold()
	done := make(chan error, 1)
	go func() {
		for range n {
			if _, err := c.WriteToAddrPort(make([]byte, 1200), to); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a round larger than the queue stalled its writer")
	}
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() < n/4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if k := got.Load(); k < n/4 {
		t.Fatalf("only %d packets left while a round larger than the queue was held", k)
	}
	c.Release()
	for got.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if k := got.Load(); k != n {
		t.Fatalf("%d of %d packets arrived", k, n)
	}
}

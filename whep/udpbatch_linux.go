package whep

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchConn is the shared UDP port as pion's ICE mux sees it: every
// viewer's packets are queued, and one goroutine hands them to the kernel
// many at a time, with sendmmsg(2), and a viewer's run of equal-sized
// packets (the fragments of one picture) as one UDP GSO send (UDP_SEGMENT)
// that the kernel cuts into datagrams. Sending each packet with its own
// sendto(2) was over half of the CPU a viewer cost. What the sender pays
// per 1200-byte packet on this project's 2-core VM over loopback
// (bench/udpsend, BENCHMARKS.md): 6.1-6.7 µs with sendto, 2.1-2.3 µs with
// sendmmsg, 1.2-1.3 µs with GSO on top.
//
// Packets keep their order per destination. A write returns once the
// packet is queued; like a full socket buffer, a full queue makes writers
// wait. Where GSO is refused (an old kernel, a device without checksum
// offload, qemu-user) it is turned off and packets go one datagram each.
type batchConn struct {
	*net.UDPConn
	raw  syscall.RawConn
	inet int // the socket's family: unix.AF_INET or unix.AF_INET6
	log  *slog.Logger
	gso  atomic.Bool
	// held counts writers in a round (Hold): while one is, a first queued
	// packet does not wake the flusher; the end of a round does, so that
	// the round leaves in as few sends as possible.
	held atomic.Int32

	mu     sync.Mutex
	space  *sync.Cond // signalled when the queue is taken
	queue  *packetBatch
	closed bool
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	close  sync.Once

	// the flusher's own
	spare     *packetBatch
	plan      sendPlan
	failed    atomic.Uint64 // packets the kernel refused
	segmented atomic.Uint64 // GSO sends
}

// maxQueued bounds the bytes waiting for the flusher: a burst of keyframes
// to every viewer waits in the writers instead of growing memory.
const maxQueued = 256 << 10

type packetBatch struct {
	data []byte
	pkts []queuedPacket
}

type queuedPacket struct {
	off, n int32
	addr   netip.AddrPort
}

func newBatchConn(conn *net.UDPConn, log *slog.Logger) (*batchConn, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var family int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		sa, serr = unix.Getsockname(int(fd))
		switch sa.(type) {
		case *unix.SockaddrInet4:
			family = unix.AF_INET
		case *unix.SockaddrInet6:
			family = unix.AF_INET6
		}
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, serr
	}
	if family == 0 {
		return nil, errors.New("not an IP socket")
	}
	c := &batchConn{
		UDPConn: conn, raw: raw, inet: family, log: log,
		queue: &packetBatch{}, spare: &packetBatch{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	c.space = sync.NewCond(&c.mu)
	c.gso.Store(true)
	go c.flush()
	return c, nil
}

// WriteToAddrPort queues one packet (ice.AddrPortReaderWriter).
func (c *batchConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if !c.batchable(addr) {
		return c.UDPConn.WriteToUDPAddrPort(b, addr)
	}
	c.mu.Lock()
	for !c.closed && len(c.queue.pkts) > 0 && len(c.queue.data)+len(b) > maxQueued {
		c.wakeFlusher() // whoever holds a round
		c.space.Wait()
	}
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	q := c.queue
	q.pkts = append(q.pkts, queuedPacket{off: int32(len(q.data)), n: int32(len(b)), addr: addr})
	q.data = append(q.data, b...)
	first := len(q.pkts) == 1
	c.mu.Unlock()
	if first && c.held.Load() == 0 {
		c.wakeFlusher()
	}
	return len(b), nil
}

func (c *batchConn) wakeFlusher() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Hold starts a round of writes (one sample to many viewers): what is
// queued waits for a Release, or for the queue to fill. Rounds are short:
// with several writers they may overlap, and every Release flushes, so
// that packets never wait for all writers to be idle at once.
func (c *batchConn) Hold() { c.held.Add(1) }

// Release ends a round and wakes the flusher for what is queued.
func (c *batchConn) Release() {
	c.held.Add(-1)
	c.mu.Lock()
	queued := len(c.queue.pkts) > 0
	c.mu.Unlock()
	if queued {
		c.wakeFlusher()
	}
}

// batchable: the destinations a sockaddr is made for here. Others (an IPv6
// link-local zone, IPv6 on an IPv4 socket) are written at once by the
// standard library, which also gives their errors; all of a destination's
// packets take the same way, so their order holds.
func (c *batchConn) batchable(addr netip.AddrPort) bool {
	a := addr.Addr()
	if a.Zone() != "" {
		return false
	}
	return c.inet == unix.AF_INET6 || a.Unmap().Is4()
}

// WriteTo queues one packet (net.PacketConn).
func (c *batchConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if u, ok := addr.(*net.UDPAddr); ok {
		return c.WriteToAddrPort(b, u.AddrPort())
	}
	return c.UDPConn.WriteTo(b, addr)
}

// ReadFromAddrPort reads as the socket does (ice.AddrPortReaderWriter).
func (c *batchConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.UDPConn.ReadFromUDPAddrPort(b)
}

// SetWriteDeadline does nothing: writes only queue. (The ICE mux sets a past
// deadline to unblock a write stuck in the kernel; here the flusher is the
// only one that waits for the kernel.)
func (c *batchConn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline sets the read deadline.
func (c *batchConn) SetDeadline(t time.Time) error { return c.UDPConn.SetReadDeadline(t) }

// Close sends what is queued if the socket takes it at once, then closes.
func (c *batchConn) Close() error {
	var err error
	c.close.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.space.Broadcast()
		c.mu.Unlock()
		_ = c.UDPConn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		close(c.stop)
		<-c.done
		err = c.UDPConn.Close()
	})
	return err
}

func (c *batchConn) flush() {
	defer close(c.done)
	for {
		select {
		case <-c.wake:
		case <-c.stop:
			c.drain()
			return
		}
		// Woken by a round's end or by a write outside any round (pion's
		// own: STUN, RTCP, retransmissions): let writers that are ready to
		// run queue theirs first, so that they leave in the same batch.
		runtime.Gosched()
		c.drain()
	}
}

// drain sends until the queue is empty.
func (c *batchConn) drain() {
	for {
		c.mu.Lock()
		if len(c.queue.pkts) == 0 {
			c.mu.Unlock()
			return
		}
		c.queue, c.spare = c.spare, c.queue
		c.space.Broadcast()
		c.mu.Unlock()
		if err := c.send(c.spare); err != nil {
			c.log.Debug("whep: UDP send stopped", "err", err) // closing
		}
		c.spare.data, c.spare.pkts = c.spare.data[:0], c.spare.pkts[:0]
	}
}

// sendPlan is a batch turned into sendmmsg(2) messages: one per packet, or
// with GSO one per run of a destination's equal-sized packets. Its slices
// are kept from batch to batch.
type sendPlan struct {
	msgs    []unix.Mmsghdr
	iovs    []unix.Iovec
	names4  []unix.RawSockaddrInet4
	names6  []unix.RawSockaddrInet6
	control []byte
	groups  []sendGroup
	next    []int32 // per packet: the next packet of its group, -1 at the end
	open    map[netip.AddrPort]int32
}

type sendGroup struct {
	addr        netip.AddrPort
	size        int32 // of every segment but the last
	first, last int32 // packets
	count       int32
	closed      bool // the last segment was shorter
}

// maxSegments bounds a GSO send: the kernel's UDP_MAX_SEGMENTS, and 64 kB
// of UDP payload in all.
const maxSegments = 64

func (c *batchConn) send(b *packetBatch) error {
	p := &c.plan
	p.group(b, c.gso.Load())
	p.build(b, c.inet)
	for sent := 0; sent < len(p.msgs); sent++ {
		n, err := c.sendmmsg(p.msgs[sent:])
		if err == nil {
			for _, g := range p.groups[sent : sent+n] {
				if g.count > 1 {
					c.segmented.Add(1)
				}
			}
			sent += max(n, 1) - 1
			continue
		}
		if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		// The kernel refused message sent: the rest go on.
		g := &p.groups[sent]
		if g.count == 1 {
			c.refused(g.addr, err)
			continue
		}
		if gsoRefused(err) && c.gso.CompareAndSwap(true, false) {
			c.log.Info("whep: UDP GSO refused, sending one datagram a packet", "err", err)
		}
		for i := g.first; i >= 0; i = p.next[i] {
			q := b.pkts[i]
			if _, err := c.UDPConn.WriteToUDPAddrPort(b.data[q.off:q.off+q.n], q.addr); err != nil {
				c.refused(q.addr, err)
			}
		}
	}
	return nil
}

// gsoRefused tells the errors of a kernel or device without UDP GSO from
// those of one destination.
func gsoRefused(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP)
}

// refused counts a packet the kernel did not take (a destination that
// cannot be reached: UDP gives no other word of it).
func (c *batchConn) refused(to netip.AddrPort, err error) {
	if n := c.failed.Add(1); n&(n-1) == 0 { // 1, 2, 4, 8, ...: a hint without a flood
		c.log.Debug("whep: UDP packet not sent", "to", to, "err", err, "failed", n)
	}
}

// maxRawMessages bounds one raw sendmmsg call, and so how long it holds a
// processor the scheduler cannot take back (a stop-the-world waits for it
// too): 64 GSO messages are a round of video for 64 viewers, some 600
// packets, under a millisecond at the 1.2-1.3 µs a packet bench/udpsend
// measured here. A larger batch takes more calls.
const maxRawMessages = 64

// sendmmsg sends messages from the start of msgs and returns how many went.
//
// The socket does not block (Go opens it non-blocking; a full buffer is
// EAGAIN, and the wait for room is the poller's), so the call is a raw
// one, without telling the scheduler: a round of 50 viewers spends about half
// a millisecond in the kernel, long enough for the scheduler's monitor to take
// the processor away and wake another thread to run it, which with every
// round kept that monitor polling every 20 µs: thread wake-ups, which are
// dear on this project's VM (BENCHMARKS.md, session 5).
func (c *batchConn) sendmmsg(msgs []unix.Mmsghdr) (int, error) {
	var n int
	var errno syscall.Errno
	err := c.raw.Write(func(fd uintptr) bool {
		for {
			r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(min(len(msgs), maxRawMessages)), 0, 0, 0)
			switch e {
			case unix.EINTR:
				continue // a signal before the first message went
			case unix.EAGAIN:
				return false // wait until the socket takes more
			}
			n, errno = int(r), e
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// group sorts a batch's packets into messages: with GSO, a destination's
// consecutive equal-sized packets (and one shorter last one) share a
// message; packets to other destinations in between do not split it.
func (p *sendPlan) group(b *packetBatch, gso bool) {
	p.groups = p.groups[:0]
	p.next = p.next[:0]
	if p.open == nil {
		p.open = map[netip.AddrPort]int32{}
	}
	clear(p.open)
	for i, q := range b.pkts {
		p.next = append(p.next, -1)
		if gso {
			if k, ok := p.open[q.addr]; ok {
				g := &p.groups[k]
				if !g.closed && q.n <= g.size && g.count < maxSegments && (g.count+1)*g.size <= 65000 {
					p.next[g.last] = int32(i)
					g.last = int32(i)
					g.count++
					g.closed = q.n < g.size
					continue
				}
			}
			p.open[q.addr] = int32(len(p.groups))
		}
		p.groups = append(p.groups, sendGroup{addr: q.addr, size: q.n, first: int32(i), last: int32(i), count: 1})
	}
}

// build makes the sendmmsg(2) messages of the groups.
func (p *sendPlan) build(b *packetBatch, inet int) {
	n := len(p.groups)
	p.msgs = grow(p.msgs, n)
	p.iovs = grow(p.iovs, len(b.pkts))
	space := unix.CmsgSpace(2)
	p.control = grow(p.control, n*space)
	if inet == unix.AF_INET {
		p.names4 = grow(p.names4, n)
	} else {
		p.names6 = grow(p.names6, n)
	}
	iov := 0
	for k := range p.groups {
		g := &p.groups[k]
		m := &p.msgs[k]
		*m = unix.Mmsghdr{}
		start := iov
		for i := g.first; i >= 0; i = p.next[i] {
			q := b.pkts[i]
			p.iovs[iov] = unix.Iovec{Base: &b.data[q.off]}
			p.iovs[iov].SetLen(int(q.n))
			iov++
		}
		m.Hdr.Iov = &p.iovs[start]
		m.Hdr.SetIovlen(iov - start)
		port := g.addr.Port()
		if inet == unix.AF_INET {
			sa := &p.names4[k]
			*sa = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: g.addr.Addr().Unmap().As4()}
			binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], port)
			m.Hdr.Name, m.Hdr.Namelen = (*byte)(unsafe.Pointer(sa)), unix.SizeofSockaddrInet4
		} else {
			sa := &p.names6[k]
			*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: g.addr.Addr().As16()}
			binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], port)
			m.Hdr.Name, m.Hdr.Namelen = (*byte)(unsafe.Pointer(sa)), unix.SizeofSockaddrInet6
		}
		if g.count > 1 {
			cm := p.control[k*space : (k+1)*space]
			h := (*unix.Cmsghdr)(unsafe.Pointer(&cm[0]))
			h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
			h.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&cm[unix.CmsgLen(0)])) = uint16(g.size) // host byte order
			m.Hdr.Control = &cm[0]
			m.Hdr.SetControllen(space)
		}
	}
}

// grow returns s with length n, reusing its array when it is large enough.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/4)
	}
	return s[:n]
}

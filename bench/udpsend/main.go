//go:build linux

// Command udpsend measures what sending a UDP packet costs the sender on
// this machine, three ways: one sendto(2) a packet, sendmmsg(2) batches of
// single packets, and sendmmsg(2) with UDP GSO (UDP_SEGMENT: one message
// per destination that the kernel cuts into nine datagrams). It sends
// pictures of nine 1200-byte packets to each of 50 loopback receivers, which
// run in a child process so that their CPU is not counted, and prints the
// sender's CPU per packet. Linux only.
//
//	go run ./bench/udpsend [-frames 3000] [-rounds 2]
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	dests    = 50
	perFrame = 9
	size     = 1200
	basePort = 30500
)

func main() {
	frames := flag.Int("frames", 3000, "pictures sent to every receiver per mode")
	rounds := flag.Int("rounds", 2, "times each mode runs")
	receive := flag.Bool("receive", false, "be the receivers (internal)")
	flag.Parse()
	if *receive {
		receivers()
		return
	}
	child := exec.Command(os.Args[0], "-receive")
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		log.Fatal(err)
	}
	defer child.Process.Kill()
	time.Sleep(500 * time.Millisecond)
	for range *rounds {
		for _, mode := range []string{"sendto", "sendmmsg", "gso"} {
			c := send(mode, *frames)
			n := *frames * dests * perFrame
			fmt.Printf("%-8s %d packets: sender CPU %v, %.2f µs a packet\n", mode, n, c.Round(time.Millisecond), float64(c.Nanoseconds())/1e3/float64(n))
		}
	}
}

func receivers() {
	for i := range dests {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: basePort + i})
		if err != nil {
			log.Fatal(err)
		}
		c.SetReadBuffer(4 << 20)
		go func() {
			b := make([]byte, 65536)
			for {
				if _, err := c.Read(b); err != nil {
					return
				}
			}
		}()
	}
	select {}
}

func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// send sends frames pictures to every receiver, one picture each every
// millisecond, and returns the CPU it took.
func send(mode string, frames int) time.Duration {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	raw, err := conn.SyscallConn()
	if err != nil {
		log.Fatal(err)
	}
	picture := make([]byte, perFrame*size)
	var names [dests]unix.RawSockaddrInet4
	for i := range names {
		names[i] = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: [4]byte{127, 0, 0, 1}}
		port := basePort + i
		p := (*[2]byte)(unsafe.Pointer(&names[i].Port))
		p[0], p[1] = byte(port>>8), byte(port)
	}
	msgs := make([]unix.Mmsghdr, dests*perFrame)
	iovs := make([]unix.Iovec, dests*perFrame)
	space := unix.CmsgSpace(2)
	control := make([]byte, dests*space)
	start := cpu()
	for range frames {
		n := 0
		for d := range dests {
			if mode == "sendto" {
				to := netipAddrPort(basePort + d)
				for k := range perFrame {
					if _, err := conn.WriteToUDPAddrPort(picture[k*size:(k+1)*size], to); err != nil {
						log.Fatal(err)
					}
				}
				continue
			}
			segments := perFrame
			if mode == "gso" {
				segments = 1
			}
			for k := range segments {
				m := &msgs[n]
				*m = unix.Mmsghdr{}
				iovs[n] = unix.Iovec{Base: &picture[k*size]}
				iovs[n].SetLen(size * perFrame / segments)
				m.Hdr.Iov, m.Hdr.Name, m.Hdr.Namelen = &iovs[n], (*byte)(unsafe.Pointer(&names[d])), unix.SizeofSockaddrInet4
				m.Hdr.SetIovlen(1)
				if mode == "gso" {
					cm := control[d*space : (d+1)*space]
					h := (*unix.Cmsghdr)(unsafe.Pointer(&cm[0]))
					h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
					h.SetLen(unix.CmsgLen(2))
					*(*uint16)(unsafe.Pointer(&cm[unix.CmsgLen(0)])) = size
					m.Hdr.Control = &cm[0]
					m.Hdr.SetControllen(space)
				}
				n++
			}
		}
		for sent := 0; sent < n; {
			err := raw.Write(func(fd uintptr) bool {
				r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[sent])), uintptr(min(n-sent, 1024)), 0, 0, 0)
				if e == unix.EAGAIN {
					return false
				}
				if e != 0 {
					log.Fatalf("%s: sendmmsg: %v", mode, e)
				}
				sent += int(r)
				return true
			})
			if err != nil {
				log.Fatal(err)
			}
		}
		time.Sleep(time.Millisecond)
	}
	return cpu() - start
}

func netipAddrPort(port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
}

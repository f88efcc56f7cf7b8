package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// observer is the operator's side: an independent paho client that sees
// every box's availability and replies, and sends the commands.
type observer struct {
	cl   mqtt.Client
	base string

	mu        sync.Mutex
	changed   chan struct{} // closed at every availability change
	online    map[string]bool
	onlineAt  map[string]time.Time // first live (not retained) online per box
	onlines   int
	waiting   map[string]chan time.Time // "<box> <id>" -> reply arrival
	failed    int                       // replies with ok=false
	unmatched int                       // replies nobody waited for
}

// reply is the part of a reply the observer reads.
type reply struct {
	ID    string `json:"id"`
	Cmd   string `json:"cmd"`
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

func newObserver(url, base string) (*observer, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	o := &observer{
		base: base, changed: make(chan struct{}),
		online: map[string]bool{}, onlineAt: map[string]time.Time{}, waiting: map[string]chan time.Time{},
	}
	o.cl = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).
		SetClientID("fleetsim-observer-" + hex.EncodeToString(b[:])).
		SetCleanSession(true).SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second).SetKeepAlive(60 * time.Second))
	if tok := o.cl.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("observer: connect to %s: %v", url, tok.Error())
	}
	tok := o.cl.SubscribeMultiple(map[string]byte{base + "/+/availability": 1, base + "/+/reply": 1}, o.onMessage)
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		o.cl.Disconnect(0)
		return nil, fmt.Errorf("observer: subscribe: %v", tok.Error())
	}
	return o, nil
}

func (o *observer) close() { o.cl.Disconnect(250) }

// onMessage runs on paho's network goroutine and only records.
func (o *observer) onMessage(_ mqtt.Client, m mqtt.Message) {
	at := time.Now()
	box, kind, ok := strings.Cut(strings.TrimPrefix(m.Topic(), o.base+"/"), "/")
	if !ok {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch kind {
	case "availability":
		if m.Retained() {
			return // from before this run (an external broker)
		}
		isOnline := string(m.Payload()) == "online"
		if isOnline == o.online[box] {
			return
		}
		o.online[box] = isOnline
		if isOnline {
			o.onlines++
			if _, seen := o.onlineAt[box]; !seen {
				o.onlineAt[box] = at
			}
		} else {
			o.onlines--
		}
		close(o.changed)
		o.changed = make(chan struct{})
	case "reply":
		var r reply
		if err := json.Unmarshal(m.Payload(), &r); err != nil {
			o.unmatched++
			return
		}
		if !r.OK {
			o.failed++
		}
		ch, ok := o.waiting[box+" "+r.ID]
		if !ok {
			o.unmatched++
			return
		}
		delete(o.waiting, box+" "+r.ID)
		ch <- at // buffered: never blocks
	}
}

// waitOnline waits until want boxes are online (or, with want 0, none is).
func (o *observer) waitOnline(ctx context.Context, want int) error {
	for {
		o.mu.Lock()
		n, changed := o.onlines, o.changed
		o.mu.Unlock()
		if n == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d boxes online, waiting for %d: %w", n, want, ctx.Err())
		case <-changed:
		}
	}
}

// onlineTimes returns, per box, when it was first seen online.
func (o *observer) onlineTimes() []time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	ts := make([]time.Time, 0, len(o.onlineAt))
	for _, t := range o.onlineAt {
		ts = append(ts, t)
	}
	return ts
}

// expect registers a reply to wait for, before the command is sent.
func (o *observer) expect(box, id string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	o.mu.Lock()
	o.waiting[box+" "+id] = ch
	o.mu.Unlock()
	return ch
}

// send publishes a command (QoS 1, not retained) and returns when it was
// handed to paho.
func (o *observer) send(ctx context.Context, topic string, payload []byte) (time.Time, error) {
	sent := time.Now()
	tok := o.cl.Publish(topic, 1, false, payload)
	select {
	case <-tok.Done():
		return sent, tok.Error()
	case <-ctx.Done():
		return sent, ctx.Err()
	}
}

// replyCounts returns the replies with ok=false and those nobody waited for.
func (o *observer) replyCounts() (failed, unmatched int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failed, o.unmatched
}

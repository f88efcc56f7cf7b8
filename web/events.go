package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/onair/onair/audience"
	"github.com/onair/onair/broadcast"
)

// sockets tracks the event WebSockets so that Close can end them: the HTTP
// server's Shutdown does not reach hijacked connections.
type sockets struct {
	mu     sync.Mutex
	conns  map[*websocket.Conn]context.CancelFunc
	closed bool
	wg     sync.WaitGroup
}

func (s *sockets) init() { s.conns = map[*websocket.Conn]context.CancelFunc{} }

func (s *sockets) add(c *websocket.Conn, cancel context.CancelFunc, max int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.conns) >= max {
		return false
	}
	s.conns[c] = cancel
	s.wg.Add(1)
	return true
}

func (s *sockets) remove(c *websocket.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		s.wg.Done()
	}
}

func (s *sockets) closeAll() {
	s.mu.Lock()
	s.closed = true
	for c, cancel := range s.conns {
		cancel()
		c.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "the box is shutting down"), time.Now().Add(time.Second))
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

var upgrader = websocket.Upgrader{
	ReadBufferSize: 1024, WriteBufferSize: 4096,
	// Write buffers are lent per message: hundreds of idle sockets hold none.
	WriteBufferPool: &sync.Pool{},
	// The page is served by the box itself; other origins may read public
	// events too (they are on the public status anyway).
	CheckOrigin: func(*http.Request) bool { return true },
}

// event is one message on the event socket.
type event map[string]any

// clientMessage is what a page sends on the socket.
type clientMessage struct {
	Type   string `json:"type"`
	Name   string `json:"name"`
	Viewer string `json:"viewer"`
	Text   string `json:"text"`
}

// events streams broadcast events (state, title, viewers, comments, hearts,
// comments_enabled), sent at once on connect and on every change, and takes
// the page's hello, comments and hearts. A private broadcast tells a socket
// without a valid invite only that it is private, and takes nothing from it.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		writeError(w, http.StatusBadRequest, "this endpoint speaks WebSocket")
		return
	}
	token, _ := bearer(r)
	admin := s.authorize(r) == authAdmin
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	ctx, cancel := context.WithCancel(context.Background())
	if !s.sockets.add(conn, cancel, s.opt.MaxSockets) {
		cancel()
		conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "too many connections"), time.Now().Add(time.Second))
		conn.Close()
		return
	}
	defer s.sockets.remove(conn)
	defer conn.Close()
	defer cancel()

	// The room's events flow only while the socket is admitted.
	var sub *audience.Subscription
	defer func() {
		if sub != nil {
			sub.Close()
		}
	}()
	replies := make(chan event, 8)
	// Admission is decided before the first message is read (and again on
	// every change by the writer loop below), so a page's hello is never
	// refused for arriving before the first check.
	var admitted atomic.Bool
	if st, _ := s.opt.Hub.Status(); admin || !st.Private || s.tokenValid(token, st.BroadcastFor()) {
		admitted.Store(true)
	}
	conn.SetReadLimit(4096)
	go func() {
		defer cancel()
		viewer := audience.Viewer{Name: "viewer"}
		if st, _ := s.opt.Hub.Status(); st.Private && !admin {
			viewer.InviteID = s.inviteID(token, st.BroadcastFor())
		}
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var msg clientMessage
			if err := json.Unmarshal(data, &msg); err != nil {
				s.reply(ctx, replies, event{"type": "error", "code": "bad_message", "error": "messages are JSON objects"})
				continue
			}
			if !admitted.Load() {
				s.reply(ctx, replies, event{"type": "error", "code": "private", "error": "this broadcast is private: open your invite link"})
				continue
			}
			if e := s.handleClient(&viewer, admin, msg); e != nil {
				s.reply(ctx, replies, e)
			}
		}
	}()

	send := func(e any) bool {
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		return conn.WriteJSON(e) == nil
	}
	var lastState, lastTitle, lastBroadcast string
	lastViewers, lastPrivate, lastAdmitted, lastComments := -1, false, false, -1
	var subEvents <-chan audience.Event
	viewerTick := time.NewTicker(time.Second)
	defer viewerTick.Stop()
	ping := time.NewTicker(20 * time.Second)
	defer ping.Stop()
	for first := true; ; first = false {
		st, changed := s.opt.Hub.Status()
		ok := admin || !st.Private || s.tokenValid(token, st.BroadcastFor())
		admitted.Store(ok)
		if first || string(st.State) != lastState || st.BroadcastID != lastBroadcast || st.Private != lastPrivate || ok != lastAdmitted {
			e := event{"type": "state", "state": string(st.State), "private": st.Private, "admitted": ok}
			if ok {
				e["broadcast_id"] = st.BroadcastID
				if !st.LiveSince.IsZero() && st.State == broadcast.Live {
					e["live_since"] = st.LiveSince.UTC().Format(time.RFC3339)
				}
			}
			if !send(e) {
				return
			}
			lastState, lastBroadcast, lastPrivate = string(st.State), st.BroadcastID, st.Private
			if ok && !lastAdmitted {
				lastTitle, lastViewers, lastComments = "\x00", -1, -1 // send everything again
				if s.opt.Room != nil {
					var snap audience.Snapshot
					sub, snap = s.opt.Room.SubscribeSnapshot()
					subEvents = sub.Events()
					if !sendSnapshot(send, snap) {
						return
					}
					lastComments = boolInt(snap.CommentsEnabled)
				}
			}
			if !ok && sub != nil {
				sub.Close() // nothing of a private broadcast for the uninvited
				sub, subEvents = nil, nil
			}
			lastAdmitted = ok
		}
		if ok {
			if st.Title != lastTitle {
				if !send(event{"type": "title", "title": st.Title}) {
					return
				}
				lastTitle = st.Title
			}
			if now, _ := s.opt.WHEP.Viewers(); now != lastViewers {
				if !send(event{"type": "viewers", "viewers": now}) {
					return
				}
				lastViewers = now
			}
			if s.opt.Room != nil {
				if on := s.opt.Room.CommentsEnabled(); boolInt(on) != lastComments {
					if !send(event{"type": "comments_enabled", "enabled": on}) {
						return
					}
					lastComments = boolInt(on)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-viewerTick.C:
		case e := <-replies:
			if !send(e) {
				return
			}
		case e, open := <-subEvents:
			if !open {
				// Dropped for falling behind: the page reconnects and gets
				// a fresh snapshot.
				conn.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "too slow"), time.Now().Add(time.Second))
				return
			}
			if e.Type == "comments_enabled" {
				lastComments = boolInt(e.Enabled)
			}
			if !send(e) {
				return
			}
		case <-ping.C:
			if conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second)) != nil {
				return
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// reply queues an answer to this socket's own client; a client that floods
// the socket faster than it reads loses replies, not the socket's writer.
func (s *Server) reply(ctx context.Context, replies chan<- event, e event) {
	select {
	case replies <- e:
	case <-ctx.Done():
	default:
	}
}

// sendSnapshot sends what a joining page shows at once: comments on/off,
// the heart count (as "hearts": no animation for hearts sent before) and
// the recent comments. The subscription started at the same instant, so
// nothing is missed or sent twice.
func sendSnapshot(send func(any) bool, snap audience.Snapshot) bool {
	if !send(event{"type": "comments_enabled", "enabled": snap.CommentsEnabled}) ||
		!send(event{"type": "hearts", "count": snap.Hearts}) {
		return false
	}
	for _, c := range snap.Comments {
		if !send(audience.CommentEvent(c)) {
			return false
		}
	}
	return true
}

// handleClient carries out one message from a page; it returns the answer
// for that page alone, if any.
func (s *Server) handleClient(v *audience.Viewer, admin bool, msg clientMessage) event {
	if s.opt.Room == nil {
		return event{"type": "error", "code": "unavailable", "error": "comments are not available"}
	}
	switch msg.Type {
	case "hello":
		if msg.Viewer != "" {
			if len(msg.Viewer) > 64 {
				return event{"type": "error", "code": "bad_message", "error": "viewer id longer than 64 characters"}
			}
			v.ID = msg.Viewer
		}
		if name := strings.TrimSpace(msg.Name); name != "" {
			v.Name = name
		}
		return nil
	case "comment":
		var err error
		if admin {
			_, err = s.opt.Room.PostAsBroadcaster(msg.Text)
		} else if v.ID == "" {
			return event{"type": "error", "code": "hello_first", "error": "say hello with a viewer id before commenting"}
		} else {
			_, err = s.opt.Room.Post(*v, msg.Text)
		}
		return commentError(err)
	case "heart":
		if v.ID == "" {
			return event{"type": "error", "code": "hello_first", "error": "say hello with a viewer id before sending hearts"}
		}
		_, err := s.opt.Room.Heart(*v)
		if errors.Is(err, audience.ErrRateLimited) {
			return nil // extra taps are simply not counted
		}
		return commentError(err)
	}
	return event{"type": "error", "code": "bad_message", "error": "unknown message type " + strconv.Quote(msg.Type)}
}

// commentError turns a refusal into the page's message.
func commentError(err error) event {
	var limited *audience.RateLimitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &limited):
		return event{"type": "error", "code": "rate_limited", "error": err.Error(),
			"retry_after_s": limited.RetryAfter.Seconds()}
	case errors.Is(err, audience.ErrCommentsOff):
		return event{"type": "error", "code": "comments_off", "error": "comments are off"}
	case errors.Is(err, audience.ErrBlocked):
		return event{"type": "error", "code": "blocked", "error": "you can no longer comment on this broadcast"}
	case errors.Is(err, audience.ErrTooLong), errors.Is(err, audience.ErrEmpty):
		return event{"type": "error", "code": "invalid", "error": err.Error()}
	}
	return event{"type": "error", "code": "invalid", "error": err.Error()}
}

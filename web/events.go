package web

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
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
	// The page is served by the box itself; other origins may read public
	// events too (they are on the public status anyway).
	CheckOrigin: func(*http.Request) bool { return true },
}

// event is one message on the event socket.
type event map[string]any

// events streams broadcast events: state, title and viewers, sent at once on
// connect and on every change.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		writeError(w, http.StatusBadRequest, "this endpoint speaks WebSocket")
		return
	}
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

	conn.SetReadLimit(4096)
	go func() {
		// Reader: client messages (hello, comment, heart) are for the
		// audience features; for now they are read and let go. A read error
		// ends the socket.
		defer cancel()
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()

	send := func(e event) bool {
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		return conn.WriteJSON(e) == nil
	}
	var lastState, lastTitle, lastBroadcast string
	lastViewers := -1
	viewerTick := time.NewTicker(time.Second)
	defer viewerTick.Stop()
	ping := time.NewTicker(20 * time.Second)
	defer ping.Stop()
	for {
		st, changed := s.opt.Hub.Status()
		if string(st.State) != lastState || st.BroadcastID != lastBroadcast {
			e := event{"type": "state", "state": string(st.State), "broadcast_id": st.BroadcastID}
			if !st.LiveSince.IsZero() && st.State == "live" {
				e["live_since"] = st.LiveSince.UTC().Format(time.RFC3339)
			}
			if !send(e) {
				return
			}
			lastState, lastBroadcast = string(st.State), st.BroadcastID
		}
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
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-viewerTick.C:
		case <-ping.C:
			if conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second)) != nil {
				return
			}
		}
	}
}

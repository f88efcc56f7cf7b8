//go:build cgo

package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/config"
	"github.com/onair/onair/internal/whepclient"
)

// socket is one event WebSocket as a page opens it.
type socket struct {
	t    testing.TB
	conn *websocket.Conn
	in   chan map[string]any
}

func (r *running) socket(t testing.TB, token string) *socket {
	t.Helper()
	u := "ws" + strings.TrimPrefix(r.base, "http") + "/api/live/ws"
	if token != "" {
		u += "?t=" + url.QueryEscape(token)
	}
	conn, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	resp.Body.Close()
	s := &socket{t: t, conn: conn, in: make(chan map[string]any, 1024)}
	go func() {
		defer close(s.in)
		for {
			var e map[string]any
			if err := conn.ReadJSON(&e); err != nil {
				return
			}
			s.in <- e
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return s
}

func (s *socket) send(msg map[string]any) {
	s.t.Helper()
	if err := s.conn.WriteJSON(msg); err != nil {
		s.t.Fatalf("send %v: %v", msg, err)
	}
}

// next returns the next event that match accepts, failing after 5 s.
func (s *socket) next(what string, match func(map[string]any) bool) map[string]any {
	s.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e, ok := <-s.in:
			if !ok {
				s.t.Fatalf("socket closed while waiting for %s", what)
			}
			if match(e) {
				return e
			}
		case <-timeout:
			s.t.Fatalf("no %s within 5 s", what)
		}
	}
}

func typed(typ string) func(map[string]any) bool {
	return func(e map[string]any) bool { return e["type"] == typ }
}

func TestCommentsModerationAndHearts(t *testing.T) {
	r := start(t, func(c *config.Config) { c.Audience.CommentInterval = config.Duration(10 * time.Minute) })
	defer r.stop()
	r.goLive(t)

	const n = 50
	viewers := make([]*socket, n)
	for i := range viewers {
		viewers[i] = r.socket(t, "")
		viewers[i].next("state", typed("state"))
		viewers[i].send(map[string]any{"type": "hello", "name": fmt.Sprintf("viewer %d", i), "viewer": fmt.Sprintf("v-%d", i)})
	}
	console := r.socket(t, r.token)

	// Ten viewers post at once; every socket sees the same ten, in one order,
	// with the text exactly as sent (the page renders it as text).
	payloads := []string{`<script>alert(1)</script>`, `<img src=x onerror=alert(2)>`, `javascript:alert(3)`}
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			text := fmt.Sprintf("hello from %d", i)
			if i < len(payloads) {
				text = payloads[i]
			}
			viewers[i].send(map[string]any{"type": "comment", "text": text})
		}()
	}
	wg.Wait()
	var order []string
	var firstID string
	for i, s := range append(viewers, console) {
		var got []string
		for len(got) < 10 {
			e := s.next("comment", typed("comment"))
			if firstID == "" {
				firstID = e["id"].(string)
			}
			got = append(got, e["viewer"].(string)+":"+e["text"].(string))
		}
		if i == 0 {
			order = got
			continue
		}
		if strings.Join(got, "|") != strings.Join(order, "|") {
			t.Fatalf("socket %d saw\n%v\nsocket 0 saw\n%v", i, got, order)
		}
	}
	for _, p := range payloads {
		if !strings.Contains(strings.Join(order, "|"), p) {
			t.Fatalf("payload %q was altered: %v", p, order)
		}
	}

	// Rate limit: a second comment within the interval is refused with the wait.
	viewers[0].send(map[string]any{"type": "comment", "text": "again"})
	if e := viewers[0].next("refusal", typed("error")); e["code"] != "rate_limited" || e["retry_after_s"].(float64) <= 0 {
		t.Fatalf("second comment: %v", e)
	}
	// Too long.
	viewers[20].send(map[string]any{"type": "comment", "text": strings.Repeat("x", 281)})
	if e := viewers[20].next("refusal", typed("error")); e["code"] != "invalid" {
		t.Fatalf("281 characters: %v", e)
	}

	// A page that joins now gets the history, oldest first.
	if e := r.socket(t, "").next("history", typed("comment")); e["id"] != firstID {
		t.Fatalf("history starts with %v, want comment %s", e, firstID)
	}
	// Remove: gone for everyone.
	if code, body := r.admin(t, http.MethodDelete, "/api/comments/"+firstID, ""); code != 200 {
		t.Fatalf("remove: %d %s", code, body)
	}
	if e := viewers[30].next("comment_removed", typed("comment_removed")); e["id"] != firstID {
		t.Fatalf("removed %v, want %s", e, firstID)
	}
	if code, _ := r.admin(t, http.MethodDelete, "/api/comments/"+firstID, ""); code != 404 {
		t.Fatalf("removing twice: %d, want 404", code)
	}

	// Block: that viewer can no longer comment.
	if code, body := r.admin(t, http.MethodPost, "/api/blocks", `{"viewer":"v-40"}`); code != 200 {
		t.Fatalf("block: %d %s", code, body)
	}
	viewers[40].send(map[string]any{"type": "comment", "text": "let me in"})
	if e := viewers[40].next("refusal", typed("error")); e["code"] != "blocked" {
		t.Fatalf("blocked viewer's comment: %v", e)
	}

	// Comments off: viewers see it and are refused; the broadcaster still speaks.
	if code, body := r.admin(t, http.MethodPatch, "/api/broadcast", `{"comments_enabled":false}`); code != 200 {
		t.Fatalf("comments off: %d %s", code, body)
	}
	if e := viewers[41].next("comments_enabled", typed("comments_enabled")); e["enabled"] != false {
		t.Fatalf("%v", e)
	}
	viewers[41].send(map[string]any{"type": "comment", "text": "anyone?"})
	if e := viewers[41].next("refusal", typed("error")); e["code"] != "comments_off" {
		t.Fatalf("comment while off: %v", e)
	}
	console.send(map[string]any{"type": "comment", "text": "Back in five"})
	if e := viewers[41].next("broadcaster comment", typed("comment")); e["broadcaster"] != true || e["text"] != "Back in five" {
		t.Fatalf("broadcaster comment: %v", e)
	}
	if code, body := r.admin(t, http.MethodPost, "/api/comments", `{"text":"From the API"}`); code != 201 {
		t.Fatalf("POST /api/comments: %d %s", code, body)
	}

	// Hearts: counted and seen by everyone.
	for i := 0; i < 5; i++ {
		viewers[i].send(map[string]any{"type": "heart"})
	}
	deadline := time.After(5 * time.Second)
	for {
		e := viewers[49].next("heart", typed("heart"))
		if e["count"].(float64) == 5 {
			break
		}
		select {
		case <-deadline:
			t.Fatal("heart count never reached 5")
		default:
		}
	}

	// Comments on/off survives a restart of the daemon (the setting is kept).
	if saved := r.d.settings.Get().CommentsEnabled; saved == nil || *saved {
		t.Fatalf("comments off was not saved: %v", saved)
	}
}

// opens tells whether token gets the private broadcast through every door:
// WHEP, the event socket and the status. It fails the test when the doors
// disagree.
func opens(t *testing.T, r *running, token string) (whepCode int) {
	t.Helper()
	header := map[string]string{"Content-Type": "application/sdp"}
	if token != "" {
		header["Authorization"] = "Bearer " + token
	}
	whepCode, _ = r.call(t, http.MethodPost, "/api/whep", "v=0\r\n", header)
	// 400: admitted, then refused for the bad offer; 401/403: not admitted.
	admitted := whepCode == http.StatusBadRequest

	s := r.socket(t, token)
	st := s.next("state", typed("state"))
	if st["admitted"] != admitted || st["private"] != true {
		t.Fatalf("token %.12q: WHEP %d but socket state %v", token, whepCode, st)
	}
	if !admitted {
		if _, ok := st["broadcast_id"]; ok {
			t.Fatalf("an uninvited socket learned the broadcast id: %v", st)
		}
		s.send(map[string]any{"type": "hello", "viewer": "x", "name": "x"})
		s.send(map[string]any{"type": "comment", "text": "sneaking in"})
		if e := s.next("refusal", typed("error")); e["code"] != "private" {
			t.Fatalf("uninvited comment: %v", e)
		}
	}
	_, body := r.call(t, http.MethodGet, "/api/status", "", map[string]string{"Authorization": "Bearer " + token})
	var pub map[string]any
	json.Unmarshal([]byte(body), &pub)
	if _, hasTitle := pub["title"]; hasTitle != admitted {
		t.Fatalf("token %.12q admitted=%v but status %s", token, admitted, body)
	}
	return whepCode
}

func TestPrivateBroadcastInvites(t *testing.T) {
	r := start(t, nil)
	defer r.stop()
	// A public viewer is watching when the broadcast turns private.
	r.goLive(t)
	ctx := context.Background()
	public, err := whepclient.Dial(ctx, r.base+"/api/whep", whepclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer public.Close()
	publicSocket := r.socket(t, "")
	publicSocket.next("state", typed("state"))

	// Invites made now open this broadcast.
	mk := func(name string) map[string]any {
		code, body := r.admin(t, http.MethodPost, "/api/invites", `{"name":"`+name+`","ttl":"1h"}`)
		if code != 201 {
			t.Fatalf("create invite: %d %s", code, body)
		}
		var inv map[string]any
		json.Unmarshal([]byte(body), &inv)
		if !strings.Contains(inv["url"].(string), "/?t=") {
			t.Fatalf("invite url %v", inv["url"])
		}
		return inv
	}
	tokenOf := func(inv map[string]any) string {
		u, _ := url.Parse(inv["url"].(string))
		return u.Query().Get("t")
	}
	alice, bob := mk("alice"), mk("bob")
	invited, err := whepclient.Dial(ctx, r.base+"/api/whep", whepclient.Options{Token: tokenOf(alice)})
	if err != nil {
		t.Fatal(err)
	}
	defer invited.Close()
	waitViewers(t, r, 2)

	if code, body := r.admin(t, http.MethodPatch, "/api/broadcast", `{"private":true}`); code != 200 {
		t.Fatalf("private: %d %s", code, body)
	}
	waitViewers(t, r, 1) // the public viewer is gone at once, the invited one stays
	if e := publicSocket.next("private state", typed("state")); e["admitted"] != false {
		t.Fatalf("public socket after the switch: %v", e)
	}

	// Every door, every kind of token.
	forged := tokenOf(bob)
	forged = forged[:len(forged)-2] + map[bool]string{true: "AA", false: "AB"}[strings.HasSuffix(forged, "AB")]
	cases := []struct {
		name  string
		token string
		want  int
	}{
		{"valid", tokenOf(bob), 400},
		{"admin", r.token, 400},
		{"none", "", 401},
		{"garbage", "not-a-token", 403},
		{"forged signature", forged, 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := opens(t, r, c.token); got != c.want {
				t.Fatalf("WHEP with %s token: %d, want %d", c.name, got, c.want)
			}
		})
	}

	// Revoking alice's invite drops her at once.
	if code, body := r.admin(t, http.MethodDelete, "/api/invites/"+alice["id"].(string), ""); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	waitViewers(t, r, 0)
	if got := opens(t, r, tokenOf(alice)); got != 403 {
		t.Fatalf("revoked invite: WHEP %d, want 403", got)
	}

	// The next broadcast is another broadcast: bob's invite no longer opens it.
	if code, _ := r.admin(t, http.MethodDelete, "/api/live", ""); code != 200 {
		t.Fatal("stop")
	}
	r.goLive(t)
	if got := opens(t, r, tokenOf(bob)); got != 403 {
		t.Fatalf("another broadcast's invite: WHEP %d, want 403", got)
	}
	// An invite made while idle opens the next broadcast.
	r.admin(t, http.MethodDelete, "/api/live", "")
	carol := mk("carol")
	r.goLive(t)
	if got := opens(t, r, tokenOf(carol)); got != 400 {
		t.Fatalf("invite made while idle: WHEP %d, want 400 (admitted)", got)
	}
	// The QR code is a PNG.
	resp, err := http.DefaultClient.Do(func() *http.Request {
		req, _ := http.NewRequest(http.MethodGet, r.base+"/api/invites/"+carol["id"].(string)+"/qr", nil)
		req.Header.Set("Authorization", "Bearer "+r.token)
		return req
	}())
	if err != nil {
		t.Fatal(err)
	}
	png, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Fatalf("QR: %d %q", resp.StatusCode, png[:min(8, len(png))])
	}
}

func waitViewers(t *testing.T, r *running, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		now, _ := r.d.viewers.Viewers()
		if now == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d viewers, want %d", now, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAnnouncementNeverDelaysGoingLive(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	release := make(chan struct{})
	arrived := make(chan struct{}, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body map[string]any
		json.NewDecoder(req.Body).Decode(&body)
		mu.Lock()
		got = append(got, body)
		mu.Unlock()
		arrived <- struct{}{}
		if req.URL.Path == "/hang" {
			select {
			case <-release:
			case <-req.Context().Done():
			}
		}
	}))
	defer hook.Close()
	defer close(release)
	r := start(t, func(c *config.Config) {
		c.PublicURL = "https://stage.example.org"
		c.DeviceID = "stage-left"
		c.Announce.Webhooks = []config.Webhook{{URL: hook.URL + "/hang", Format: "json"}}
	})
	defer r.stop()
	// Going live answers while the webhook still holds the announcement.
	r.goLive(t)
	<-arrived
	mu.Lock()
	a := got[0]
	mu.Unlock()
	if a["event"] != "went_live" || a["title"] != "Test" || a["link"] != "https://stage.example.org/" || a["device"] != "stage-left" {
		t.Fatalf("announcement %v", a)
	}
	// A private broadcast is never announced.
	r.admin(t, http.MethodDelete, "/api/live", "")
	if code, body := r.admin(t, http.MethodPost, "/api/live", `{"private":true}`); code != 200 {
		t.Fatalf("private live: %d %s", code, body)
	}
	select {
	case <-arrived:
		t.Fatal("a private broadcast was announced")
	case <-time.After(300 * time.Millisecond):
	}
}

func TestLongPressActions(t *testing.T) {
	for _, action := range []string{"private", "comments", "shutdown"} {
		t.Run(action, func(t *testing.T) {
			off := make(chan struct{}, 1)
			r := startWith(t, func(c *config.Config) { c.GPIO.LongPressAction = action }, Options{
				PowerOff: func(context.Context) error { off <- struct{}{}; return nil },
			})
			defer r.stop()
			r.goLive(t)
			press := func() {
				if code, body := r.admin(t, http.MethodPost, "/api/button", `{"press":"long"}`); code != 200 {
					t.Fatalf("long press: %d %s", code, body)
				}
			}
			press()
			st, _ := r.d.Hub().Status()
			switch action {
			case "private":
				if !st.Private {
					t.Fatal("long press did not make the broadcast private")
				}
				press()
				if st, _ := r.d.Hub().Status(); st.Private {
					t.Fatal("a second long press did not make it public again")
				}
			case "comments":
				if r.d.room.CommentsEnabled() {
					t.Fatal("long press did not switch comments off")
				}
			case "shutdown":
				select {
				case <-off:
				default:
					t.Fatal("long press did not power off")
				}
				if st.State != broadcast.Idle {
					t.Fatalf("state %s before power off, want idle", st.State)
				}
			}
		})
	}
}

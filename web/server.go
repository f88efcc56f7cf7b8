// Package web is the box's HTTP face: the viewer page and console (embedded,
// no build step), the JSON API of docs/http.md, WHEP signalling, the event
// WebSocket, /metrics and /healthz.
package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/onair/onair/audience"
	"github.com/onair/onair/broadcast"
	"github.com/onair/onair/gpio"
	"github.com/onair/onair/replay"
	"github.com/onair/onair/status"
	"github.com/onair/onair/whep"
)

//go:embed static
var static embed.FS

// maxSDPBytes bounds an offer; real ones are a few kilobytes.
const maxSDPBytes = 64 << 10

// Options configure the server.
type Options struct {
	AdminToken string
	Hub        *broadcast.Hub
	WHEP       *whep.Server
	Status     func() status.Document
	// Health checks by name; each returns nil when its loop responds.
	Health map[string]func(context.Context) error
	// Registry gathers /metrics; nil means a new one with the box's metrics.
	Registry *prometheus.Registry
	// Press is the button's action, shared with the GPIO pin: "short" or "long".
	Press func(ctx context.Context, kind gpio.PressKind) error
	// MaxSockets bounds event WebSockets; default 1000.
	MaxSockets int
	// Uplink reports the WHIP uplink's figures; nil: none.
	Uplink func() UplinkStats
	// SetUplink changes the WHIP uplink (nil fields: unchanged); nil: the
	// route answers 404.
	SetUplink func(url, token *string, enabled *bool) error
	// StartOTA begins an update in the background; OTAState reports it.
	// nil: updates are unavailable.
	StartOTA func(OTAInstall) error
	OTAState func(context.Context) any
	// RecordingBytes is how many bytes replays have written; nil: none.
	RecordingBytes func() uint64
	// Replays are the recorded broadcasts; nil: none.
	Replays *replay.Library
	// Room carries comments and hearts; nil: none.
	Room *audience.Room
	// Invites open private broadcasts; nil: none.
	Invites *audience.Invites
	// InviteTTL is an invite's lifetime when its creator gives none.
	InviteTTL time.Duration
	// PublicURL is how viewers reach the box (invite links), without a
	// trailing slash.
	PublicURL string
	Log       *slog.Logger
}

// Server is the HTTP handler with the event sockets it owns.
type Server struct {
	opt     Options
	mux     *http.ServeMux
	sockets sockets
}

// New builds the routes.
func New(opt Options) (*Server, error) {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.MaxSockets <= 0 {
		opt.MaxSockets = 1000
	}
	if opt.AdminToken == "" {
		return nil, errors.New("web: an admin token is required")
	}
	if opt.InviteTTL <= 0 {
		opt.InviteTTL = 24 * time.Hour
	}
	opt.PublicURL = strings.TrimRight(opt.PublicURL, "/")
	s := &Server{opt: opt, mux: http.NewServeMux()}
	s.sockets.init()
	if opt.Registry == nil {
		reg, err := NewRegistry(opt)
		if err != nil {
			return nil, err
		}
		s.opt.Registry = reg
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(sub)
	pages := map[string][]byte{}
	for _, name := range []string{"index.html", "console.html", "replay.html"} {
		if pages[name], err = inlinePage(sub, name); err != nil {
			return nil, err
		}
	}
	s.route("/", map[string]http.HandlerFunc{http.MethodGet: onlyAt("/", servePage(pages["index.html"]))})
	s.route("/console", map[string]http.HandlerFunc{http.MethodGet: onlyAt("/console", servePage(pages["console.html"]))})
	s.route("/static/", map[string]http.HandlerFunc{http.MethodGet: http.StripPrefix("/static", files).ServeHTTP})
	s.route("/api/whep", map[string]http.HandlerFunc{http.MethodPost: s.whepOffer})
	s.route("/api/whep/{id}", map[string]http.HandlerFunc{
		http.MethodDelete: s.whepDelete,
		http.MethodPatch:  s.whepPatch,
	})
	s.route("/api/status", map[string]http.HandlerFunc{http.MethodGet: s.status})
	s.route("/api/live", map[string]http.HandlerFunc{
		http.MethodPost:   s.admin(s.goLive),
		http.MethodDelete: s.admin(s.stop),
	})
	s.route("/api/broadcast", map[string]http.HandlerFunc{http.MethodPatch: s.admin(s.patchBroadcast)})
	s.route("/api/button", map[string]http.HandlerFunc{http.MethodPost: s.admin(s.button)})
	s.route("/api/live/ws", map[string]http.HandlerFunc{http.MethodGet: s.events})
	s.route("/api/comments", map[string]http.HandlerFunc{http.MethodPost: s.admin(s.postComment)})
	s.route("/api/comments/{id}", map[string]http.HandlerFunc{http.MethodDelete: s.admin(s.removeComment)})
	s.route("/api/blocks", map[string]http.HandlerFunc{http.MethodPost: s.admin(s.block)})
	s.route("/api/invites", map[string]http.HandlerFunc{
		http.MethodPost: s.admin(s.createInvite),
		http.MethodGet:  s.admin(s.listInvites),
	})
	s.route("/api/invites/{id}", map[string]http.HandlerFunc{http.MethodDelete: s.admin(s.revokeInvite)})
	s.route("/api/replays", map[string]http.HandlerFunc{http.MethodGet: s.listReplays})
	s.route("/api/replays/{id}", map[string]http.HandlerFunc{
		http.MethodDelete: s.admin(s.deleteReplay),
		http.MethodPatch:  s.admin(s.patchReplay),
	})
	s.route("/api/replays/{id}/media", map[string]http.HandlerFunc{http.MethodGet: s.replayMedia})
	s.route("/replays/{id}", map[string]http.HandlerFunc{http.MethodGet: s.replayPage(servePage(pages["replay.html"]))})
	s.route("/api/ota", map[string]http.HandlerFunc{
		http.MethodPost: s.admin(s.startOTA),
		http.MethodGet:  s.admin(s.otaState),
	})
	s.route("/api/uplink", map[string]http.HandlerFunc{http.MethodPatch: s.admin(s.patchUplink)})
	s.route("/api/invites/{id}/qr", map[string]http.HandlerFunc{http.MethodGet: s.admin(s.inviteQR)})
	s.route("/metrics", map[string]http.HandlerFunc{
		http.MethodGet: promhttp.HandlerFor(s.opt.Registry, promhttp.HandlerOpts{}).ServeHTTP,
	})
	s.route("/healthz", map[string]http.HandlerFunc{http.MethodGet: s.healthz})
	return s, nil
}

// ServeHTTP serves every route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		// Nothing a client sends may take the daemon down.
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.opt.Log.Error("panic in HTTP handler", "path", r.URL.Path, "panic", v)
			writeError(w, http.StatusInternalServerError, "internal error")
		}
	}()
	s.mux.ServeHTTP(w, r)
}

// Close ends every event socket and waits for their goroutines.
func (s *Server) Close() { s.sockets.closeAll() }

// route registers a path whose methods answer 405 with JSON when wrong.
func (s *Server) route(pattern string, methods map[string]http.HandlerFunc) {
	allowed := make([]string, 0, len(methods))
	for m := range methods {
		allowed = append(allowed, m)
	}
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if h, ok := methods[r.Method]; ok {
			h(w, r)
			return
		}
		if r.Method == http.MethodHead && methods[http.MethodGet] != nil {
			methods[http.MethodGet](w, r)
			return
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path))
	})
}

// servePage serves one page, built at start (inlinePage).
func servePage(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}
}

// onlyAt answers 404 for any path but path: "/" is the pattern of every
// path nothing else matches.
func onlyAt(path string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			writeError(w, http.StatusNotFound, "no such page: "+r.URL.Path)
			return
		}
		h(w, r)
	}
}

// admin wraps a handler that needs the admin token.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch s.authorize(r) {
		case authNone:
			w.Header().Set("WWW-Authenticate", `Bearer realm="onair"`)
			writeError(w, http.StatusUnauthorized, "this needs the admin token (Authorization: Bearer <token>)")
		case authWrong:
			writeError(w, http.StatusForbidden, "wrong admin token")
		default:
			h(w, r)
		}
	}
}

type auth int

const (
	authNone auth = iota
	authWrong
	authAdmin
)

func (s *Server) authorize(r *http.Request) auth {
	token, ok := bearer(r)
	if !ok {
		return authNone
	}
	if s.isAdminToken(token) {
		return authAdmin
	}
	return authWrong
}

func (s *Server) isAdminToken(token string) bool {
	return subtle.ConstantTimeCompare([]byte(token), []byte(s.opt.AdminToken)) == 1
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if t := r.URL.Query().Get("t"); t != "" {
			return t, true // where headers cannot be set (WebSocket, <video src>)
		}
		return "", false
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", true // present but malformed: treated as a wrong token
	}
	return strings.TrimSpace(token), true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// readJSON decodes an optional JSON body into v, refusing unknown fields.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "body larger than 16 KiB")
			return false
		}
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return true
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	doc := s.opt.Status()
	switch s.authorize(r) {
	case authAdmin:
		writeJSON(w, http.StatusOK, doc)
	default:
		pub := doc.Public()
		if doc.Private {
			if token, _ := bearer(r); token != "" {
				st, _ := s.opt.Hub.Status()
				if s.tokenValid(token, st.BroadcastFor()) {
					pub = doc.Invited()
				}
			}
		}
		writeJSON(w, http.StatusOK, pub)
	}
}

type liveRequest struct {
	Title   *string `json:"title"`
	Private *bool   `json:"private"`
}

func (s *Server) goLive(w http.ResponseWriter, r *http.Request) {
	var req liveRequest
	if !readJSON(w, r, &req) {
		return
	}
	st, _ := s.opt.Hub.Status()
	title, private := st.Title, st.Private
	if req.Private != nil {
		private = *req.Private
	}
	if req.Title != nil {
		if err := broadcast.CheckTitle(*req.Title); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		title = *req.Title
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if _, err := s.opt.Hub.GoLive(ctx, broadcast.LiveOptions{Title: title, Private: private}); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, broadcast.ErrBusy) {
			code = http.StatusConflict
		}
		writeError(w, code, "go live: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.opt.Status())
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) {
	if _, err := s.opt.Hub.Stop(r.Context()); err != nil {
		writeError(w, http.StatusConflict, "stop: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.opt.Status())
}

type broadcastPatch struct {
	Title           *string `json:"title"`
	Private         *bool   `json:"private"`
	CommentsEnabled *bool   `json:"comments_enabled"`
}

func (s *Server) patchBroadcast(w http.ResponseWriter, r *http.Request) {
	var req broadcastPatch
	if !readJSON(w, r, &req) {
		return
	}
	if req.Title != nil {
		if err := broadcast.CheckTitle(*req.Title); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if req.CommentsEnabled != nil && s.opt.Room == nil {
		writeError(w, http.StatusBadRequest, "comments_enabled: this daemon has no comments")
		return
	}
	if req.Title != nil {
		s.opt.Hub.SetTitle(*req.Title)
	}
	if req.CommentsEnabled != nil {
		s.opt.Room.SetCommentsEnabled(*req.CommentsEnabled)
	}
	if req.Private != nil {
		s.opt.Hub.SetPrivate(*req.Private)
		s.DropUnadmitted()
	}
	writeJSON(w, http.StatusOK, s.opt.Status())
}

func (s *Server) patchUplink(w http.ResponseWriter, r *http.Request) {
	var req struct {
		URL     *string `json:"url"`
		Token   *string `json:"token"`
		Enabled *bool   `json:"enabled"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if s.opt.SetUplink == nil {
		writeError(w, http.StatusNotFound, "no uplink in this daemon")
		return
	}
	if req.URL == nil && req.Token == nil && req.Enabled == nil {
		writeError(w, http.StatusBadRequest, `give at least one of "url", "token", "enabled"`)
		return
	}
	if err := s.opt.SetUplink(req.URL, req.Token, req.Enabled); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.opt.Status())
}

func (s *Server) button(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Press string `json:"press"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	kind, err := gpio.ParsePressKind(req.Press)
	if err != nil {
		writeError(w, http.StatusBadRequest, `press must be "short" or "long"`)
		return
	}
	if s.opt.Press == nil {
		writeError(w, http.StatusServiceUnavailable, "no button action in this daemon")
		return
	}
	if err := s.opt.Press(r.Context(), kind); err != nil {
		writeError(w, http.StatusConflict, "button: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.opt.Status())
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, check := range s.opt.Health {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan error, 1)
			go func() { done <- check(ctx) }()
			var err error
			select {
			case err = <-done:
			case <-ctx.Done():
				err = errors.New("no answer within 2s")
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				ok = false
				checks[name] = err.Error()
			} else {
				checks[name] = "ok"
			}
		}()
	}
	wg.Wait()
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"ok": ok, "checks": checks})
}

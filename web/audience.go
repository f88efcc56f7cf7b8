package web

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/onair/onair/audience"
	"github.com/onair/onair/broadcast"
)

// tokenValid tells whether token opens broadcast id: the admin token opens
// everything, an invite only its own broadcast while unexpired and unrevoked.
func (s *Server) tokenValid(token, id string) bool {
	if token == "" {
		return false
	}
	if s.isAdminToken(token) {
		return true
	}
	if s.opt.Invites == nil {
		return false
	}
	_, err := s.opt.Invites.Check(token, id)
	return err == nil
}

// inviteID names the invite behind token (empty for none or the admin's),
// so that a block reaches the invite and not only the viewer id.
func (s *Server) inviteID(token, id string) string {
	if token == "" || s.opt.Invites == nil || s.isAdminToken(token) {
		return ""
	}
	inv, err := s.opt.Invites.Check(token, id)
	if err != nil {
		return ""
	}
	return inv.ID
}

// admit decides whether r may see broadcast id, private or not: nil when it
// may, else it has answered 401 (no token) or 403 (a token that does not
// open this broadcast) with the reason.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, id string, private bool) (token string, ok bool) {
	token, _ = bearer(r)
	if !private {
		return token, true
	}
	if token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="onair"`)
		writeError(w, http.StatusUnauthorized, "this broadcast is private: open your invite link")
		return "", false
	}
	if s.isAdminToken(token) {
		return token, true
	}
	if s.opt.Invites == nil {
		writeError(w, http.StatusForbidden, "this invite does not open this broadcast")
		return "", false
	}
	if _, err := s.opt.Invites.Check(token, id); err != nil {
		writeError(w, http.StatusForbidden, inviteRefusal(err))
		return "", false
	}
	return token, true
}

func inviteRefusal(err error) string {
	switch {
	case errors.Is(err, audience.ErrExpired):
		return "this invite has expired"
	case errors.Is(err, audience.ErrRevoked):
		return "this invite was withdrawn"
	case errors.Is(err, audience.ErrOtherBroadcast):
		return "this invite is for another broadcast"
	}
	return "this invite is not valid"
}

// DropUnadmitted ends the sessions of viewers whom the broadcast no longer
// admits: after it turned private, or after their invite was revoked.
// Event sockets check again by themselves within a second.
func (s *Server) DropUnadmitted() int {
	st, _ := s.opt.Hub.Status()
	if !st.Private {
		return 0
	}
	id := st.BroadcastFor()
	return s.opt.WHEP.DropUnless(func(token string) bool { return s.tokenValid(token, id) })
}

func (s *Server) removeComment(w http.ResponseWriter, r *http.Request) {
	if s.opt.Room == nil {
		writeError(w, http.StatusNotFound, "no comments in this daemon")
		return
	}
	if err := s.opt.Room.Remove(r.PathValue("id")); err != nil {
		writeError(w, http.StatusNotFound, "no comment "+r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// postComment is the broadcaster's comment from the API.
func (s *Server) postComment(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Text string `json:"text"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if s.opt.Room == nil {
		writeError(w, http.StatusNotFound, "no comments in this daemon")
		return
	}
	c, err := s.opt.Room.PostAsBroadcaster(req.Text)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, c)
}

func (s *Server) block(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Viewer string `json:"viewer"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Viewer) == "" {
		writeError(w, http.StatusBadRequest, `give the viewer's id: {"viewer": "..."}`)
		return
	}
	if s.opt.Room == nil {
		writeError(w, http.StatusNotFound, "no comments in this daemon")
		return
	}
	if err := s.opt.Room.Block(req.Viewer); err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// inviteView is an invite as the API shows it.
type inviteView struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	BroadcastID string    `json:"broadcast_id"`
	URL         string    `json:"url"`
	Expires     time.Time `json:"expires"`
	Revoked     bool      `json:"revoked"`
}

func (s *Server) viewOf(inv audience.Invite) inviteView {
	return inviteView{ID: inv.ID, Name: inv.Name, BroadcastID: inv.BroadcastID,
		URL: s.opt.PublicURL + "/?t=" + inv.Token, Expires: inv.Expires.UTC(), Revoked: inv.Revoked}
}

func (s *Server) createInvite(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
		TTL  string `json:"ttl"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if s.opt.Invites == nil {
		writeError(w, http.StatusNotFound, "no invites in this daemon")
		return
	}
	ttl := s.opt.InviteTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, `ttl: want a duration such as "2h" or "90m"`)
			return
		}
		ttl = d
	}
	st, _ := s.opt.Hub.Status()
	inv, err := s.opt.Invites.Create(st.BroadcastFor(), req.Name, ttl)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, s.viewOf(inv))
}

func (s *Server) listInvites(w http.ResponseWriter, r *http.Request) {
	views := []inviteView{}
	if s.opt.Invites != nil {
		for _, inv := range s.opt.Invites.List() {
			views = append(views, s.viewOf(inv))
		}
	}
	writeJSON(w, http.StatusOK, views)
}

func (s *Server) revokeInvite(w http.ResponseWriter, r *http.Request) {
	if s.opt.Invites == nil {
		writeError(w, http.StatusNotFound, "no invites in this daemon")
		return
	}
	if err := s.opt.Invites.Revoke(r.PathValue("id")); err != nil {
		writeError(w, http.StatusNotFound, "no invite "+r.PathValue("id"))
		return
	}
	s.DropUnadmitted()
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// inviteQR draws an invite's link as a QR code (PNG) for a phone to scan.
func (s *Server) inviteQR(w http.ResponseWriter, r *http.Request) {
	if s.opt.Invites == nil {
		writeError(w, http.StatusNotFound, "no invites in this daemon")
		return
	}
	for _, inv := range s.opt.Invites.List() {
		if inv.ID == r.PathValue("id") {
			png, err := qrPNG(s.viewOf(inv).URL)
			if err != nil {
				writeError(w, http.StatusInternalServerError, "draw QR code: "+err.Error())
				return
			}
			w.Header().Set("Content-Type", "image/png")
			w.Header().Set("Cache-Control", "no-store")
			w.Write(png)
			return
		}
	}
	writeError(w, http.StatusNotFound, "no invite "+r.PathValue("id"))
}

var _ = broadcast.Live

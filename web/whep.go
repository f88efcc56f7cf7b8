package web

import (
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/onair/onair/whep"
)

func (s *Server) whepOffer(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/sdp" {
		writeError(w, http.StatusUnsupportedMediaType, "the offer must be sent as Content-Type: application/sdp")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSDPBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "the offer is larger than 64 KiB")
			return
		}
		writeError(w, http.StatusBadRequest, "read offer: "+err.Error())
		return
	}
	opt := whep.OfferOptions{Viewer: r.Header.Get("X-Viewer-Id")}
	if r.URL.Query().Get("preview") != "1" {
		st, _ := s.opt.Hub.Status()
		token, ok := s.admit(w, r, st.BroadcastFor(), st.Private)
		if !ok {
			return
		}
		opt.Access = token
	} else {
		// The console's preview plays while idle: admin only.
		switch s.authorize(r) {
		case authNone:
			writeError(w, http.StatusUnauthorized, "the preview needs the admin token")
			return
		case authWrong:
			writeError(w, http.StatusForbidden, "wrong admin token")
			return
		}
		opt.Preview = true
	}
	answer, err := s.opt.WHEP.Offer(r.Context(), string(body), opt)
	switch {
	case err == nil:
	case errors.Is(err, whep.ErrBadOffer):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, whep.ErrFull), errors.Is(err, whep.ErrClosed):
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	default:
		s.opt.Log.Error("whep offer", "err", err)
		writeError(w, http.StatusInternalServerError, "could not answer the offer")
		return
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/api/whep/"+answer.ID)
	w.Header().Set("ETag", `"`+answer.ID+`"`)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, answer.SDP)
}

func (s *Server) whepDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.opt.WHEP.Delete(r.PathValue("id")); err != nil {
		writeError(w, http.StatusNotFound, "no viewer session "+r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// whepPatch answers trickle ICE: the box gathers every candidate before it
// answers (no trickle), so it accepts none here, as WHEP allows.
func (s *Server) whepPatch(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusMethodNotAllowed, "this endpoint does not take trickled candidates; send them in the offer")
}

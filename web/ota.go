package web

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
)

// OTAInstall asks the box to install an update bundle.
type OTAInstall struct {
	// Source is the bundle's http(s) URL or a path on the box.
	Source    string `json:"source"`
	Version   string `json:"version"`
	SHA256    string `json:"sha256"`
	Downgrade bool   `json:"downgrade"`
}

// ErrOTABusy and ErrOTAUnavailable let StartOTA's refusals map to 409 and 503.
var (
	ErrOTABusy        = errors.New("an update is already being installed")
	ErrOTAUnavailable = errors.New("updates are not available on this machine")
)

func (s *Server) startOTA(w http.ResponseWriter, r *http.Request) {
	var req OTAInstall
	if !readJSON(w, r, &req) {
		return
	}
	if s.opt.StartOTA == nil {
		writeError(w, http.StatusServiceUnavailable, ErrOTAUnavailable.Error())
		return
	}
	if strings.TrimSpace(req.Source) == "" {
		writeError(w, http.StatusBadRequest, `give the bundle: {"source": "https://... or /path/on/the/box.bundle"}`)
		return
	}
	switch err := s.opt.StartOTA(req); {
	case err == nil:
		writeJSON(w, http.StatusAccepted, s.opt.OTAState(r.Context()))
	case errors.Is(err, ErrOTABusy):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrOTAUnavailable):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusBadRequest, err.Error())
	}
}

func (s *Server) otaState(w http.ResponseWriter, r *http.Request) {
	if s.opt.OTAState == nil {
		writeJSON(w, http.StatusOK, map[string]any{"available": false, "reason": ErrOTAUnavailable.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	writeJSON(w, http.StatusOK, s.opt.OTAState(ctx))
}

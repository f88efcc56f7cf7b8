package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/onair/onair/replay"
)

// replayOpens tells whether r may see replay info: public replays are for
// everyone, private ones for the admin and holders of an invite to that
// broadcast (the same tokens as live).
func (s *Server) replayOpens(r *http.Request, info replay.Info) bool {
	if !info.Private {
		return true
	}
	token, _ := bearer(r)
	return s.tokenValid(token, info.BroadcastID)
}

// listReplays lists the replays a request may see, newest first.
func (s *Server) listReplays(w http.ResponseWriter, r *http.Request) {
	list := []replay.Info{}
	if s.opt.Replays != nil {
		for _, info := range s.opt.Replays.List() {
			if s.replayOpens(r, info) {
				list = append(list, info)
			}
		}
	}
	writeJSON(w, http.StatusOK, list)
}

// replayFor finds the replay of the request's {id} and checks access: a
// private replay is 401 without a token and 403 with one that does not open
// it. An unknown id (or one that is not a plain name) is 404, also for
// private replays one may not see, so that ids cannot be probed.
func (s *Server) replayFor(w http.ResponseWriter, r *http.Request) (replay.Info, bool) {
	id := r.PathValue("id")
	if s.opt.Replays == nil {
		writeError(w, http.StatusNotFound, "no replays on this box")
		return replay.Info{}, false
	}
	info, ok := s.opt.Replays.Get(id)
	if !ok {
		writeError(w, http.StatusNotFound, "no replay "+id)
		return replay.Info{}, false
	}
	if _, ok := s.admit(w, r, info.BroadcastID, info.Private); !ok {
		return replay.Info{}, false
	}
	return info, true
}

func (s *Server) replayMedia(w http.ResponseWriter, r *http.Request) {
	info, ok := s.replayFor(w, r)
	if !ok {
		return
	}
	s.opt.Replays.ServeMedia(w, r, info.ID)
}

func (s *Server) deleteReplay(w http.ResponseWriter, r *http.Request) {
	if s.opt.Replays == nil {
		writeError(w, http.StatusNotFound, "no replays on this box")
		return
	}
	switch err := s.opt.Replays.Delete(r.PathValue("id")); {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	case errors.Is(err, replay.ErrNotFound):
		writeError(w, http.StatusNotFound, "no replay "+r.PathValue("id"))
	case errors.Is(err, replay.ErrRecording):
		writeError(w, http.StatusConflict, "this replay is being recorded: stop the broadcast first")
	default:
		writeError(w, http.StatusInternalServerError, "delete replay: "+err.Error())
	}
}

func (s *Server) patchReplay(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Keep *bool `json:"keep"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if req.Keep == nil {
		writeError(w, http.StatusBadRequest, `give {"keep": true} or {"keep": false}`)
		return
	}
	if s.opt.Replays == nil {
		writeError(w, http.StatusNotFound, "no replays on this box")
		return
	}
	if err := s.opt.Replays.SetKeep(r.PathValue("id"), *req.Keep); err != nil {
		if errors.Is(err, replay.ErrNotFound) {
			writeError(w, http.StatusNotFound, "no replay "+r.PathValue("id"))
			return
		}
		writeError(w, http.StatusInternalServerError, "keep replay: "+err.Error())
		return
	}
	info, _ := s.opt.Replays.Get(r.PathValue("id"))
	writeJSON(w, http.StatusOK, info)
}

// replayPage serves the replay player; the page itself reads the id from
// its path and asks the API, so a private replay shows "private" there.
func (s *Server) replayPage(page http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.PathValue("id"), "/") {
			writeError(w, http.StatusNotFound, "no such page")
			return
		}
		page(w, r)
	}
}

package web

import "net/http"

// listReplays lists the replays a request may see.
func (s *Server) listReplays(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, []any{})
}

package fleetsim

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// serverStatus is one server in the control API's listing.
type serverStatus struct {
	Name         string `json:"name"`
	Role         string `json:"role"`
	Organization string `json:"organization,omitempty"`
	Address      string `json:"address"`
	Answering    bool   `json:"answering"`
}

// ControlHandler lets demos and out-of-process tests steer the fleet:
//
//	GET  /servers                              the servers and their addresses
//	POST /servers/{name}/answering?value=false make a server answer 503 (stale)
func (f *Fleet) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /servers", func(w http.ResponseWriter, _ *http.Request) {
		out := make([]serverStatus, 0, len(f.servers))
		for _, s := range f.servers {
			s.mu.Lock()
			out = append(out, serverStatus{s.spec.Name, s.spec.Role, s.spec.Organization, s.Address(), s.answering})
			s.mu.Unlock()
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /servers/{name}/answering", func(w http.ResponseWriter, r *http.Request) {
		s := f.Server(r.PathValue("name"))
		if s == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown server " + strconv.Quote(r.PathValue("name"))})
			return
		}
		answering, err := strconv.ParseBool(r.URL.Query().Get("value"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "value: must be true or false"})
			return
		}
		s.SetAnswering(answering)
		writeJSON(w, http.StatusOK, map[string]bool{"answering": answering})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

package app

import (
	"encoding/json"
	"net/http"
	"time"

	"kefu/wxsim"
)

// simControl serves the simulator's WeChat API plus two control endpoints
// `kefu chat` uses from another process:
//
//	POST /sim/interact {"app_id","open_id","kind"}  a user action opens the send window
//	POST /sim/kf/customer {"open_kfid","user","text"} a WeChat KF customer writes (returns the callback token)
//	GET  /sim/inbox?to=OPENID                       what the customer received
func simControl(sim *wxsim.API) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", sim.Handler())
	mux.HandleFunc("POST /sim/interact", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			AppID  string `json:"app_id"`
			OpenID string `json:"open_id"`
			Kind   int    `json:"kind"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.AppID == "" || req.OpenID == "" {
			http.Error(w, "need app_id, open_id and kind", http.StatusBadRequest)
			return
		}
		sim.UserInteracted(req.AppID, req.OpenID, wxsim.Interaction(req.Kind), sim.Now())
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /sim/kf/customer", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			OpenKfID string `json:"open_kfid"`
			User     string `json:"user"`
			Text     string `json:"text"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16384)).Decode(&req); err != nil || req.OpenKfID == "" || req.User == "" || req.Text == "" {
			http.Error(w, "need open_kfid, user and text", http.StatusBadRequest)
			return
		}
		token, msgID, err := sim.KFCustomerSends(req.OpenKfID, req.User, req.Text)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"token": token, "msgid": msgID})
	})
	mux.HandleFunc("GET /sim/inbox", func(w http.ResponseWriter, r *http.Request) {
		to := r.URL.Query().Get("to")
		if to == "" {
			http.Error(w, "need to=", http.StatusBadRequest)
			return
		}
		type item struct {
			At      time.Time `json:"at"`
			Channel string    `json:"channel"`
			MsgType string    `json:"msgtype"`
			Content string    `json:"content"`
		}
		var out []item
		for _, s := range sim.Inbox(to) {
			out = append(out, item{At: s.At, Channel: s.Channel, MsgType: s.MsgType, Content: s.Content})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	return mux
}

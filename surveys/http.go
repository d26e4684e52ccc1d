package surveys

import (
	_ "embed"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"kefu/conv"
)

//go:embed manager.html
var managerPage []byte

// Handler serves the store managers' pages under /surveys/:
//
//	GET  /surveys/                       the page (HTML, embedded, no CDN)
//	GET  /surveys/api/me                 the principal and the choices for closing
//	GET  /surveys/api/cases?state=open   cases of the stores the principal may see
//	GET  /surveys/api/cases/{id}
//	POST /surveys/api/cases/{id}         {"action":"claim|contacted|resolved|close","root_cause":…,"outcome":…,"note":…}
//	GET  /surveys/api/nps?by=store&from=2026-11-01&to=2026-11-30[&format=csv]
//	GET  /surveys/api/comments?from=…&to=…
//	GET  /surveys/claim?case=&who=&exp=&sig=   one-tap claim from an alert (signed, no login)
//
// Every /surveys/api request needs the conv.Principal the console's auth
// middleware puts in the context; managers see only their stores
// (Principal.CanSee), admins and HQ supervisors see all.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /surveys/{$}", s.page)
	mux.HandleFunc("GET /surveys/api/me", s.api(s.apiMe))
	mux.HandleFunc("GET /surveys/api/cases", s.api(s.apiCases))
	mux.HandleFunc("GET /surveys/api/cases/{id}", s.api(s.apiCase))
	mux.HandleFunc("POST /surveys/api/cases/{id}", s.api(s.apiUpdateCase))
	mux.HandleFunc("GET /surveys/api/nps", s.api(s.apiNPS))
	mux.HandleFunc("GET /surveys/api/comments", s.api(s.apiComments))
	mux.HandleFunc("GET /surveys/claim", s.claim)
	return mux
}

func (s *Service) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'")
	_, _ = w.Write(managerPage)
}

// apiFunc is a JSON endpoint; errors map to statuses in one place.
type apiFunc func(w http.ResponseWriter, r *http.Request, p conv.Principal) (any, error)

func (s *Service) api(f apiFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := conv.PrincipalFrom(r.Context())
		var v any
		err := conv.ErrUnauthorized
		if ok {
			v, err = f(w, r, p)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		if v == nil {
			return // the endpoint wrote its own body (CSV)
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(v)
	}
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, conv.ErrUnauthorized):
		code = http.StatusUnauthorized
	case errors.Is(err, conv.ErrForbidden):
		code = http.StatusForbidden
	case errors.Is(err, conv.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, conv.ErrBadInput):
		code = http.StatusBadRequest
	case errors.Is(err, conv.ErrConflict):
		code = http.StatusConflict
	}
	msg := err.Error()
	if code == http.StatusInternalServerError {
		msg = "internal error"
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// visible returns the store filter of principal p.
func (s *Service) visible(p conv.Principal) func(conv.StoreID) bool {
	if p.Role == conv.RoleAdmin || (p.Role == conv.RoleSupervisor && len(p.Stores) == 0) {
		return nil
	}
	return func(id conv.StoreID) bool { return p.CanSee(s.tree, id) }
}

func (s *Service) apiMe(_ http.ResponseWriter, _ *http.Request, p conv.Principal) (any, error) {
	return map[string]any{"principal": p, "root_causes": s.cfg.Cases.RootCauses, "outcomes": s.cfg.Cases.Outcomes}, nil
}

// publicCase hides the brand-wide identity from the page.
func publicCase(c Case, transcript string) map[string]any {
	c.Identity = ""
	b, _ := json.Marshal(c)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	m["transcript_url"] = transcript
	return m
}

// visibleStores lists the stores whose case indexes p's page reads (nil:
// all, read from the global index).
func (s *Service) visibleStores(p conv.Principal) []conv.StoreID {
	if s.visible(p) == nil || s.cfg.Stores.ID == "" {
		return nil
	}
	var out []conv.StoreID
	for _, scope := range p.Stores {
		out = append(out, scope)
		for _, leaf := range s.tree.Leaves(scope) {
			if leaf != scope {
				out = append(out, leaf)
			}
		}
	}
	if len(out) == 0 {
		out = []conv.StoreID{"\x00none"} // sees nothing
	}
	return out
}

func (s *Service) apiCases(_ http.ResponseWriter, r *http.Request, p conv.Principal) (any, error) {
	f := CaseFilter{Visible: s.visible(p), Stores: s.visibleStores(p)}
	if st := r.URL.Query().Get("state"); st != "" {
		f.States = strings.Split(st, ",")
	}
	cases, err := s.Cases(r.Context(), f)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]map[string]any, 0, len(cases))
	for _, c := range cases {
		m := publicCase(c, s.TranscriptURL(c))
		m["overdue"] = c.Overdue(now)
		m["store_name"] = s.storeName(c.Store)
		out = append(out, m)
	}
	return map[string]any{"cases": out}, nil
}

func (s *Service) caseFor(r *http.Request, p conv.Principal) (Case, error) {
	c, err := s.LoadCase(r.Context(), r.PathValue("id"))
	if err != nil {
		return c, err
	}
	if v := s.visible(p); v != nil && !v(c.Store) {
		// Same answer as a missing case: no probing other stores' ids.
		return c, conv.ErrNotFound
	}
	return c, nil
}

func (s *Service) apiCase(_ http.ResponseWriter, r *http.Request, p conv.Principal) (any, error) {
	c, err := s.caseFor(r, p)
	if err != nil {
		return nil, err
	}
	return publicCase(c, s.TranscriptURL(c)), nil
}

func (s *Service) apiUpdateCase(w http.ResponseWriter, r *http.Request, p conv.Principal) (any, error) {
	if _, err := s.caseFor(r, p); err != nil {
		return nil, err
	}
	if p.Role == conv.RoleAgent {
		return nil, conv.ErrForbidden
	}
	// A JSON body cannot be sent cross-site without a CORS preflight, so
	// requiring it keeps forms on other sites from acting as the manager.
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return nil, errors.Join(conv.ErrBadInput, errors.New("Content-Type must be application/json"))
	}
	var u CaseUpdate
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&u); err != nil {
		return nil, errors.Join(conv.ErrBadInput, err)
	}
	c, err := s.UpdateCase(r.Context(), r.PathValue("id"), p.User, u)
	if err != nil {
		return nil, err
	}
	return publicCase(c, s.TranscriptURL(c)), nil
}

// period reads from/to (YYYY-MM-DD, inclusive) in the brand's time zone;
// the default is the last 30 days.
func (s *Service) period(r *http.Request) (time.Time, time.Time, error) {
	q := r.URL.Query()
	now := s.now().In(s.loc)
	to := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, s.loc).AddDate(0, 0, 1)
	from := to.AddDate(0, 0, -30)
	var err error
	if v := q.Get("from"); v != "" {
		if from, err = time.ParseInLocation("2006-01-02", v, s.loc); err != nil {
			return from, to, errors.Join(conv.ErrBadInput, errors.New("from: want YYYY-MM-DD"))
		}
	}
	if v := q.Get("to"); v != "" {
		t, err := time.ParseInLocation("2006-01-02", v, s.loc)
		if err != nil {
			return from, to, errors.Join(conv.ErrBadInput, errors.New("to: want YYYY-MM-DD"))
		}
		to = t.AddDate(0, 0, 1)
	}
	return from, to, nil
}

func (s *Service) apiNPS(w http.ResponseWriter, r *http.Request, p conv.Principal) (any, error) {
	from, to, err := s.period(r)
	if err != nil {
		return nil, err
	}
	q := Query{From: from, To: to, By: r.URL.Query().Get("by"), Store: conv.StoreID(r.URL.Query().Get("store")), Visible: s.visible(p), Location: s.loc}
	resps, err := s.responses(r.Context())
	if err != nil {
		return nil, err
	}
	rows, err := BuildReport(resps, s.tree, q)
	if err != nil {
		return nil, err
	}
	if r.URL.Query().Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="nps.csv"`)
		return nil, WriteCSV(w, q.By, rows)
	}
	return map[string]any{"definition": NPSDefinition(s.cfg), "from": from, "to": to, "by": q.By, "rows": rows}, nil
}

func (s *Service) apiComments(_ http.ResponseWriter, r *http.Request, p conv.Principal) (any, error) {
	from, to, err := s.period(r)
	if err != nil {
		return nil, err
	}
	resps, err := s.responses(r.Context())
	if err != nil {
		return nil, err
	}
	vis := s.visible(p)
	type comment struct {
		At      time.Time    `json:"at"`
		Store   conv.StoreID `json:"store"`
		Agent   string       `json:"agent,omitempty"`
		Channel string       `json:"channel"`
		Score   int          `json:"score"`
		Band    string       `json:"band"`
		Comment string       `json:"comment"`
	}
	out := []comment{}
	for i := len(resps) - 1; i >= 0 && len(out) < 200; i-- {
		x := resps[i]
		if x.Status != "answered" || x.Score == nil || x.Kind != KindNPS || x.SentAt.Before(from) || !x.SentAt.Before(to) || (vis != nil && !vis(x.Store)) {
			continue
		}
		out = append(out, comment{At: x.At, Store: x.Store, Agent: x.Agent, Channel: x.Channel, Score: *x.Score, Band: Classify(*x.Score), Comment: x.Comment})
	}
	return map[string]any{"comments": out}, nil
}

var claimTmpl = template.Must(template.New("claim").Parse(`<!doctype html><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>认领差评</title><body style="font-family:sans-serif;padding:2em">{{if .Err}}<h2>无法认领</h2><p>{{.Err}}</p>{{else}}
<h2>已认领</h2><p>{{.Case.Score}} 分 · {{.Store}}</p><p>{{.Case.Comment}}</p><p>请在 {{.Deadline}} 前回访客户。</p><p><a href="{{.Page}}">打开我的差评</a></p>{{end}}</body>`))

// claim is the one-tap link in alerts: the signature authenticates the
// manager named in it, so it works from the WeCom client without a login.
func (s *Service) claim(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	data := map[string]any{"Page": "/surveys/"}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.VerifyClaim(q.Get("case"), q.Get("who"), q.Get("exp"), q.Get("sig")); err != nil {
		w.WriteHeader(http.StatusForbidden)
		data["Err"] = "链接无效或已过期"
		_ = claimTmpl.Execute(w, data)
		return
	}
	c, err := s.UpdateCase(r.Context(), q.Get("case"), q.Get("who"), CaseUpdate{Action: "claim"})
	if err != nil {
		w.WriteHeader(http.StatusConflict)
		data["Err"] = "该差评已关闭或不存在"
		_ = claimTmpl.Execute(w, data)
		return
	}
	data["Case"], data["Store"], data["Deadline"] = c, s.storeName(c.Store), c.Deadline.In(s.loc).Format("01-02 15:04")
	_ = claimTmpl.Execute(w, data)
}

package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"kefu/conv"
)

// defaultDays is the dashboard's default period: the last 30 days.
const defaultDays = 30

// drillLimit bounds a drill-down page; the CSV export has the same cap.
const drillLimit = 2000

// NewDashboard returns the supervisor dashboard: HTML pages (overview with
// live view, trends and funnel; KPI tables with drill-down; funnel; open
// cases; definitions) and their JSON and CSV APIs under api/. It expects
// the console's auth middleware to have put a conv.Principal in the request
// context (absent → 401) and shows only the stores the principal can see.
// Links are relative, so mount it under any prefix with http.StripPrefix
// (e.g. "/reports/" → StripPrefix("/reports", …)). live may be nil: the
// queue and agent tiles then show "—".
func NewDashboard(r *Reporter, live LiveSource) http.Handler {
	d := &dashboard{r: r, live: live, tmpl: template.Must(template.New("").Funcs(tmplFuncs).Parse(dashboardTemplates))}
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", d.wrap(d.overview))
	m.HandleFunc("GET /kpi", d.wrap(d.kpiPage))
	m.HandleFunc("GET /funnel", d.wrap(d.funnelPage))
	m.HandleFunc("GET /drill", d.wrap(d.drillPage))
	m.HandleFunc("GET /cases", d.wrap(d.casesPage))
	m.HandleFunc("GET /definitions", d.wrap(d.defsPage))
	m.HandleFunc("GET /api/live", d.wrap(d.apiLive))
	m.HandleFunc("GET /api/kpi", d.wrap(d.apiKPI))
	m.HandleFunc("GET /api/kpi.csv", d.wrap(d.apiKPI))
	m.HandleFunc("GET /api/funnel", d.wrap(d.apiFunnel))
	m.HandleFunc("GET /api/funnel.csv", d.wrap(d.apiFunnel))
	m.HandleFunc("GET /api/trend", d.wrap(d.apiTrend))
	m.HandleFunc("GET /api/trend.csv", d.wrap(d.apiTrend))
	m.HandleFunc("GET /api/drill", d.wrap(d.apiDrill))
	m.HandleFunc("GET /api/drill.csv", d.wrap(d.apiDrill))
	m.HandleFunc("GET /api/cases", d.wrap(d.apiCases))
	m.HandleFunc("GET /api/cases.csv", d.wrap(d.apiCases))
	m.HandleFunc("GET /api/definitions", d.wrap(d.apiDefs))
	m.HandleFunc("GET /api/definitions.csv", d.wrap(d.apiDefs))
	d.mux = m
	return d
}

type dashboard struct {
	r    *Reporter
	live LiveSource
	tmpl *template.Template
	mux  *http.ServeMux
}

// viewer is the principal of a request with its store scope.
type viewer struct {
	P conv.Principal
	// scope is nil for an admin (everything, including events without a store).
	scope func(conv.StoreID) bool
	// stores are the leaf stores passed to the LiveSource (nil: all).
	stores []conv.StoreID
}

func (d *dashboard) viewerOf(p conv.Principal) *viewer {
	v := &viewer{P: p}
	if p.Role == conv.RoleAdmin {
		return v
	}
	tree := d.r.tree
	// CanSee walks the tree on every call; a request asks about the same few
	// stores thousands of times, so remember the answers.
	var mu sync.Mutex
	seenScope := map[conv.StoreID]bool{}
	v.scope = func(s conv.StoreID) bool {
		mu.Lock()
		defer mu.Unlock()
		ok, hit := seenScope[s]
		if !hit {
			ok = p.CanSee(tree, s)
			seenScope[s] = ok
		}
		return ok
	}
	seen := map[conv.StoreID]bool{}
	for _, s := range p.Stores {
		leaves := []conv.StoreID{s}
		if tree != nil {
			if l := tree.Leaves(s); len(l) > 0 {
				leaves = l
			}
		}
		for _, l := range leaves {
			if !seen[l] {
				seen[l] = true
				v.stores = append(v.stores, l)
			}
		}
	}
	if v.stores == nil {
		v.stores = []conv.StoreID{} // sees nothing: never "all"
	}
	return v
}

func (v *viewer) canSee(s conv.StoreID) bool { return v.scope == nil || v.scope(s) }

// ServeHTTP sets the security headers every page and API shares, then routes.
func (d *dashboard) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	// A strict policy: everything the pages need is inline, nothing is fetched
	// from elsewhere.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	if req.URL.Path == "" {
		// Mounted at "/reports" and asked for "/reports": relative links need the slash.
		path, query, _ := strings.Cut(req.RequestURI, "?")
		if query != "" {
			query = "?" + query
		}
		http.Redirect(w, req, path+"/"+query, http.StatusMovedPermanently)
		return
	}
	// Routes are found by the end of the path, so the dashboard works under
	// any prefix whether or not the mounting code strips it (links are
	// relative too).
	route := ""
	for _, r := range dashboardRoutes {
		if strings.HasSuffix(req.URL.Path, r) {
			route = r
			break
		}
	}
	if route == "" {
		http.NotFound(w, req)
		return
	}
	if route != req.URL.Path {
		r2 := new(http.Request)
		*r2 = *req
		u := *req.URL
		u.Path, u.RawPath = route, ""
		r2.URL = &u
		req = r2
	}
	d.mux.ServeHTTP(w, req)
}

// dashboardRoutes are the dashboard's paths, longest first so that
// "/api/kpi" wins over "/kpi".
var dashboardRoutes = []string{
	"/api/definitions.csv", "/api/definitions", "/api/funnel.csv", "/api/funnel", "/api/trend.csv", "/api/trend",
	"/api/drill.csv", "/api/drill", "/api/cases.csv", "/api/cases", "/api/live", "/api/kpi.csv", "/api/kpi",
	"/definitions", "/funnel", "/drill", "/cases", "/kpi", "/",
}

type handler func(w http.ResponseWriter, req *http.Request, v *viewer) error

// wrap checks the principal and maps errors to statuses (the one place).
func (d *dashboard) wrap(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		p, ok := conv.PrincipalFrom(req.Context())
		if !ok {
			http.Error(w, "login required", http.StatusUnauthorized)
			return
		}
		err := h(w, req, d.viewerOf(p))
		if err == nil {
			return
		}
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, conv.ErrBadInput):
			status = http.StatusBadRequest
		case errors.Is(err, conv.ErrForbidden):
			status = http.StatusForbidden
		case errors.Is(err, conv.ErrNotFound):
			status = http.StatusNotFound
		}
		if status == http.StatusInternalServerError {
			d.r.log.Error("dashboard request failed", "path", req.URL.Path, "err", err)
		}
		http.Error(w, strings.SplitN(err.Error(), "\n", 2)[0], status)
	}
}

// query reads the filter parameters shared by every page and API.
func (d *dashboard) query(req *http.Request, v *viewer) (Query, error) {
	vals := req.URL.Query()
	q := Query{From: vals.Get("from"), To: vals.Get("to"), Agent: vals.Get("agent"), Channel: vals.Get("channel"),
		Store: conv.StoreID(vals.Get("store")), Scope: v.scope}
	for _, s := range []string{q.From, q.To} {
		if s != "" {
			if _, err := time.Parse(time.DateOnly, s); err != nil {
				return q, fmt.Errorf("%w: bad date %q (want YYYY-MM-DD)", conv.ErrBadInput, s)
			}
		}
	}
	if q.From == "" && q.To == "" && vals.Get("all") == "" {
		today := d.r.now().In(d.r.loc)
		q.To = today.Format(time.DateOnly)
		q.From = today.AddDate(0, 0, -(defaultDays - 1)).Format(time.DateOnly)
	}
	by, err := ParseDimension(vals.Get("by"))
	if err != nil {
		return q, err
	}
	q.By = by
	if q.Store != "" && !v.canSee(q.Store) {
		return q, fmt.Errorf("%w: store %s", conv.ErrForbidden, q.Store)
	}
	return q, nil
}

// filterParams re-encodes the filters of q for links.
func filterParams(q Query) url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"from": q.From, "to": q.To, "store": string(q.Store), "agent": q.Agent, "channel": q.Channel} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	return json.NewEncoder(w).Encode(v)
}

// csvResponse sets the headers of a CSV download named name.
func csvResponse(w http.ResponseWriter, name string) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	// A BOM makes Excel — where operations staff live — read UTF-8 (store names are Chinese).
	_, _ = w.Write([]byte("\uFEFF"))
}

func isCSV(req *http.Request) bool { return strings.HasSuffix(req.URL.Path, ".csv") }

// liveView is the JSON of the live view, with durations in seconds.
type liveView struct {
	At                 time.Time `json:"at"`
	Today              string    `json:"today"`
	QueueLength        *int      `json:"queue_length"`
	LongestWaitSeconds *float64  `json:"longest_wait_seconds"`
	AgentsOnline       *int      `json:"agents_online"`
	AgentsBusy         *int      `json:"agents_busy"`
	ServiceLevel       Value     `json:"service_level"`
	ASA                Value     `json:"asa_seconds"`
	NPS                Value     `json:"nps"`
	Contacts           int64     `json:"contacts_today"`
	OpenCases          int       `json:"open_cases"`
	OverdueCases       int       `json:"overdue_cases"`
	Cursor             string    `json:"cursor"`
	Target             float64   `json:"service_level_target"`
}

func (d *dashboard) liveView(req *http.Request, v *viewer) liveView {
	lv := d.r.Live(req.Context(), d.live, v.scope, v.stores)
	out := liveView{At: lv.At, Today: lv.Today, ServiceLevel: lv.ServiceLevel, ASA: lv.ASA, NPS: lv.NPS,
		Contacts: lv.Contacts, OpenCases: lv.OpenCases, OverdueCases: lv.OverdueCases, Cursor: lv.Cursor,
		Target: 100 * d.r.cfg.ServiceLevelTarget}
	if q := lv.Queue; q != nil {
		w := q.LongestWait.Seconds()
		out.QueueLength, out.LongestWaitSeconds, out.AgentsOnline, out.AgentsBusy = &q.QueueLength, &w, &q.AgentsOnline, &q.AgentsBusy
	}
	return out
}

func (d *dashboard) apiLive(w http.ResponseWriter, req *http.Request, v *viewer) error {
	return writeJSON(w, d.liveView(req, v))
}

func (d *dashboard) apiKPI(w http.ResponseWriter, req *http.Request, v *viewer) error {
	q, err := d.query(req, v)
	if err != nil {
		return err
	}
	t := d.r.KPIs(q)
	if isCSV(req) {
		csvResponse(w, "kpi-"+string(orTotal(q.By))+"-"+q.From+"-"+q.To+".csv")
		return WriteTableCSV(w, t)
	}
	return writeJSON(w, t)
}

func (d *dashboard) apiFunnel(w http.ResponseWriter, req *http.Request, v *viewer) error {
	q, err := d.query(req, v)
	if err != nil {
		return err
	}
	f := d.r.Funnel(q)
	if isCSV(req) {
		csvResponse(w, "funnel-"+q.From+"-"+q.To+".csv")
		return WriteFunnelCSV(w, f)
	}
	return writeJSON(w, f)
}

func (d *dashboard) apiTrend(w http.ResponseWriter, req *http.Request, v *viewer) error {
	q, err := d.query(req, v)
	if err != nil {
		return err
	}
	kpi := req.URL.Query().Get("kpi")
	if kpi == "" {
		kpi = KPINPS
	}
	known := false
	for _, def := range d.r.defs {
		known = known || def.Name == kpi
	}
	if !known {
		return fmt.Errorf("%w: unknown kpi %q", conv.ErrBadInput, kpi)
	}
	series := d.r.Trend(q, kpi, 8)
	if !isCSV(req) {
		return writeJSON(w, series)
	}
	csvResponse(w, "trend-"+kpi+"-"+q.From+"-"+q.To+".csv")
	var b strings.Builder
	b.WriteString("series,label,period," + kpi + ",n\n")
	for _, s := range series {
		for _, p := range s.Points {
			val := ""
			if p.OK {
				val = strconv.FormatFloat(p.Value, 'f', 2, 64)
			}
			fmt.Fprintf(&b, "%s,%s,%s,%s,%d\n", csvCell(cell(orAll(s.Key))), csvCell(cell(s.Label)), p.Period, val, p.N)
		}
	}
	_, err = w.Write([]byte(b.String()))
	return err
}

func orAll(s string) string {
	if s == "" {
		return "all"
	}
	return s
}

func csvCell(s string) string {
	if strings.ContainsAny(s, ",\"\n\r") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

func (d *dashboard) drill(req *http.Request, v *viewer) (Query, string, string, []ContactRef, error) {
	q, err := d.query(req, v)
	if err != nil {
		return q, "", "", nil, err
	}
	key, filter := req.URL.Query().Get("key"), req.URL.Query().Get("filter")
	if q.By == DimStore && key != "" && !v.canSee(conv.StoreID(key)) {
		return q, "", "", nil, fmt.Errorf("%w: store %s", conv.ErrForbidden, key)
	}
	refs, err := d.r.Drill(q, key, filter, drillLimit)
	return q, key, filter, refs, err
}

func (d *dashboard) apiDrill(w http.ResponseWriter, req *http.Request, v *viewer) error {
	_, _, _, refs, err := d.drill(req, v)
	if err != nil {
		return err
	}
	if isCSV(req) {
		csvResponse(w, "conversations.csv")
		return WriteDrillCSV(w, refs)
	}
	if refs == nil {
		refs = []ContactRef{}
	}
	return writeJSON(w, refs)
}

func (d *dashboard) apiCases(w http.ResponseWriter, req *http.Request, v *viewer) error {
	cases := d.r.OpenCases(v.scope)
	if isCSV(req) {
		csvResponse(w, "open-cases.csv")
		return WriteCasesCSV(w, cases)
	}
	if cases == nil {
		cases = []CaseRef{}
	}
	return writeJSON(w, cases)
}

func (d *dashboard) apiDefs(w http.ResponseWriter, req *http.Request, _ *viewer) error {
	defs, err := d.r.DefinitionHistory(req.Context())
	if err != nil {
		return err
	}
	if isCSV(req) {
		csvResponse(w, "kpi-definitions.csv")
		return WriteDefinitionsCSV(w, defs)
	}
	return writeJSON(w, defs)
}

// storeOption is an entry of the store filter.
type storeOption struct {
	ID    conv.StoreID
	Label string
	Depth int
}

func (d *dashboard) storeOptions(v *viewer) []storeOption {
	var out []storeOption
	tree := d.r.tree
	if tree != nil && tree.Root.ID != "" {
		var walk func(n *conv.StoreNode, depth int)
		walk = func(n *conv.StoreNode, depth int) {
			if v.canSee(n.ID) {
				out = append(out, storeOption{ID: n.ID, Label: n.Name, Depth: depth})
			}
			for i := range n.Children {
				walk(&n.Children[i], depth+1)
			}
		}
		walk(&tree.Root, 0)
		return out
	}
	for _, s := range d.r.Stores() {
		if s != "" && v.canSee(s) {
			out = append(out, storeOption{ID: s, Label: string(s)})
		}
	}
	return out
}

// page is the data of every HTML page.
type page struct {
	Title   string
	Nav     string
	V       *viewer
	Q       Query
	Params  url.Values
	Stores  []storeOption
	Live    liveView
	Table   Table
	Funnel  Funnel
	Charts  []template.HTML
	Cases   []CaseRef
	Defs    []Definition
	Drill   []ContactRef
	Key     string
	Filter  string
	Filters []string
	More    bool
}

func (d *dashboard) newPage(req *http.Request, v *viewer, nav, title string) (*page, error) {
	q, err := d.query(req, v)
	if err != nil {
		return nil, err
	}
	return &page{Title: title, Nav: nav, V: v, Q: q, Params: filterParams(q), Stores: d.storeOptions(v), Defs: d.r.Definitions()}, nil
}

func (d *dashboard) render(w http.ResponseWriter, name string, p *page) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return d.tmpl.ExecuteTemplate(w, name, p)
}

func (d *dashboard) overview(w http.ResponseWriter, req *http.Request, v *viewer) error {
	p, err := d.newPage(req, v, "overview", "Overview")
	if err != nil {
		return err
	}
	p.Live = d.liveView(req, v)
	tq := p.Q
	if tq.By != DimWeek && tq.By != DimMonth {
		tq.By = DimDay // trends are over time even when the table is by store
	}
	target := 100 * d.r.cfg.ServiceLevelTarget
	p.Charts = []template.HTML{
		LineChart("chart-nps", "NPS by store", d.r.Trend(tq, KPINPS, 6), -100, 100, nil, ""),
		LineChart("chart-sl", fmt.Sprintf("Service level (%d s) by store", d.r.cfg.ServiceLevelSeconds), d.r.Trend(tq, KPIServiceLevel, 6), 0, 100, &target, "%"),
	}
	p.Funnel = d.r.Funnel(p.Q)
	p.Charts = append(p.Charts, FunnelChart("chart-funnel", p.Funnel))
	sq := p.Q
	if sq.By == DimTotal {
		sq.By = DimStore
	}
	p.Q.By = sq.By
	p.Table = d.r.KPIs(sq)
	p.Cases = d.r.OpenCases(v.scope)
	if len(p.Cases) > 10 {
		p.Cases, p.More = p.Cases[:10], true
	}
	return d.render(w, "overview", p)
}

func (d *dashboard) kpiPage(w http.ResponseWriter, req *http.Request, v *viewer) error {
	p, err := d.newPage(req, v, "kpi", "KPIs")
	if err != nil {
		return err
	}
	if p.Q.By == DimTotal {
		p.Q.By = DimStore
	}
	p.Table = d.r.KPIs(p.Q)
	return d.render(w, "kpi", p)
}

func (d *dashboard) funnelPage(w http.ResponseWriter, req *http.Request, v *viewer) error {
	p, err := d.newPage(req, v, "funnel", "Funnel")
	if err != nil {
		return err
	}
	p.Funnel = d.r.Funnel(p.Q)
	p.Charts = []template.HTML{FunnelChart("chart-funnel", p.Funnel)}
	return d.render(w, "funnel", p)
}

func (d *dashboard) drillPage(w http.ResponseWriter, req *http.Request, v *viewer) error {
	p, err := d.newPage(req, v, "kpi", "Conversations")
	if err != nil {
		return err
	}
	p.Q, p.Key, p.Filter, p.Drill, err = d.drill(req, v)
	if err != nil {
		return err
	}
	p.Filters = DrillFilters
	return d.render(w, "drill", p)
}

func (d *dashboard) casesPage(w http.ResponseWriter, req *http.Request, v *viewer) error {
	p, err := d.newPage(req, v, "cases", "Open cases")
	if err != nil {
		return err
	}
	p.Cases = d.r.OpenCases(v.scope)
	return d.render(w, "cases", p)
}

func (d *dashboard) defsPage(w http.ResponseWriter, req *http.Request, v *viewer) error {
	p, err := d.newPage(req, v, "definitions", "KPI definitions")
	if err != nil {
		return err
	}
	if p.Defs, err = d.r.DefinitionHistory(req.Context()); err != nil {
		return err
	}
	return d.render(w, "definitions", p)
}

var tmplFuncs = template.FuncMap{
	"fmtv": func(v Value, unit string) string {
		if !v.OK {
			return "—"
		}
		switch unit {
		case UnitPercent:
			return strconv.FormatFloat(v.Value, 'f', 1, 64) + "%"
		case UnitSeconds:
			return strconv.FormatFloat(v.Value, 'f', 1, 64) + " s"
		case UnitHours:
			return strconv.FormatFloat(v.Value, 'f', 1, 64) + " h"
		}
		return strconv.FormatFloat(v.Value, 'f', 0, 64)
	},
	"pct":    func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" },
	"params": formatParams,
	"link": func(path string, base url.Values, kv ...string) string {
		v := url.Values{}
		for k, s := range base {
			v[k] = s
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		if e := v.Encode(); e != "" {
			return path + "?" + e
		}
		return path
	},
	"indent":   func(n int) string { return strings.Repeat("\u00a0\u00a0\u00a0", n) },
	"def":      func(defs []Definition, i int) Definition { return defs[i] },
	"tm":       func(t time.Time) string { return t.Format("01-02 15:04") },
	"optint":   func(p *int) string { return optNum(p) },
	"optwait":  func(p *float64) string { return optWait(p) },
	"drillFor": drillFor,
	"dims":     func() []string { return []string{"store", "agent", "channel", "day", "week", "month"} },
	"str":      func(s conv.StoreID) string { return string(s) },
	"eqs":      func(a conv.StoreID, b conv.StoreID) bool { return a == b },
}

func optNum(p *int) string {
	if p == nil {
		return "—"
	}
	return strconv.Itoa(*p)
}

func optWait(p *float64) string {
	if p == nil {
		return "—"
	}
	return (time.Duration(*p) * time.Second).Round(time.Second).String()
}

// drillFor names the drill-down filter behind a KPI cell.
func drillFor(kpi string) string {
	switch kpi {
	case KPIServiceLevel, KPIASA, KPIAgentFirst:
		return "picked_up"
	case KPIAbandonment:
		return "abandoned"
	case KPIFCR:
		return "repeat"
	case KPIContainment:
		return "contained"
	case KPINPS, KPICSAT:
		return "detractor"
	case KPIResponseRate:
		return "answered"
	case KPICallbackTime, KPICallbackWithin, KPICloseTime:
		return "called_back"
	}
	return ""
}

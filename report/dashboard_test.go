package report

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"kefu/conv"
)

// stubLive is a LiveSource with fixed figures that records the scope it got.
type stubLive struct {
	mu     sync.Mutex
	stores [][]conv.StoreID
}

func (s *stubLive) Live(_ context.Context, stores []conv.StoreID) (LiveQueue, error) {
	s.mu.Lock()
	s.stores = append(s.stores, stores)
	s.mu.Unlock()
	return LiveQueue{QueueLength: 7, LongestWait: 95 * time.Second, AgentsOnline: 12, AgentsBusy: 9}, nil
}

// threeDays builds a reporter over three generated days ending on t0's
// day, with the clock at t0+6h (16:00).
func threeDays(t testing.TB) *Reporter {
	t.Helper()
	e := openEmbedded(t)
	var evs []conv.Event
	for i := 2; i >= 0; i-- {
		evs = append(evs, GenerateDay(uint64(100+i), t0.AddDate(0, 0, -i), shanghai, GenOptions{Contacts: 250})...)
	}
	appendAll(t, e, evs)
	r, err := New(context.Background(), e, SampleTree(), DefaultConfig(), Options{Now: func() time.Time { return t0.Add(6 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

var (
	admin   = conv.Principal{User: "hq", Name: "总部", Role: conv.RoleAdmin}
	manager = conv.Principal{User: "m01", Name: "王店长", Role: conv.RoleStoreManager, Stores: []conv.StoreID{"s-01"}}
	region  = conv.Principal{User: "r1", Name: "李经理", Role: conv.RoleSupervisor, Stores: []conv.StoreID{"r-east"}}
)

// asPrincipal stands in for the console's auth middleware.
func asPrincipal(p *conv.Principal, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p != nil {
			r = r.WithContext(conv.WithPrincipal(r.Context(), *p))
		}
		h.ServeHTTP(w, r)
	})
}

func get(t *testing.T, h http.Handler, p *conv.Principal, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	asPrincipal(p, h).ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	return rec
}

func TestDashboard_AuthAndScope(t *testing.T) {
	r := threeDays(t)
	live := &stubLive{}
	h := NewDashboard(r, live)

	if rec := get(t, h, nil, "/api/live"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("no principal: %d", rec.Code)
	}
	if rec := get(t, h, nil, "/"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("no principal page: %d", rec.Code)
	}

	var all, own Table
	decode(t, get(t, h, &admin, "/api/kpi?by=store"), &all)
	decode(t, get(t, h, &manager, "/api/kpi?by=store"), &own)
	if len(own.Rows) != 1 || own.Rows[0].Key != "s-01" || own.Rows[0].Depth != 0 {
		t.Fatalf("manager rows = %v", keys(own.Rows))
	}
	if len(all.Rows) != 9 || all.Total.Counts.Contacts <= own.Total.Counts.Contacts {
		t.Fatalf("admin rows = %v (total %d vs %d)", keys(all.Rows), all.Total.Counts.Contacts, own.Total.Counts.Contacts)
	}
	if rec := get(t, h, &manager, "/api/kpi?store=r-south"); rec.Code != http.StatusForbidden {
		t.Errorf("manager asking for another region: %d", rec.Code)
	}
	if rec := get(t, h, &manager, "/api/drill?by=store&key=s-04"); rec.Code != http.StatusForbidden {
		t.Errorf("manager drilling into another store: %d", rec.Code)
	}
	var reg Table
	decode(t, get(t, h, &region, "/api/kpi?by=store"), &reg)
	if got := strings.Join(keys(reg.Rows), ","); got != "r-east,s-01,s-02,s-03" {
		t.Errorf("region rows = %s", got)
	}

	// The live view passes the viewer's stores to the LiveSource.
	var lv map[string]any
	decode(t, get(t, h, &region, "/api/live"), &lv)
	if lv["queue_length"] != 7.0 || lv["longest_wait_seconds"] != 95.0 {
		t.Errorf("live = %v", lv)
	}
	decode(t, get(t, h, &admin, "/api/live"), &lv)
	live.mu.Lock()
	if len(live.stores) != 2 || strings.Join(ids(live.stores[0]), ",") != "s-01,s-02,s-03" || live.stores[1] != nil {
		t.Errorf("LiveSource scopes = %v", live.stores)
	}
	live.mu.Unlock()

	// Manager-scoped drill-down lists only their store's conversations.
	var refs []ContactRef
	decode(t, get(t, h, &manager, "/api/drill?filter=detractor"), &refs)
	for _, c := range refs {
		if c.Store != "s-01" {
			t.Fatalf("manager sees %s of %s", c.Conv, c.Store)
		}
	}
	if rec := get(t, h, &admin, "/api/kpi?from=yesterday"); rec.Code != http.StatusBadRequest {
		t.Errorf("bad date: %d", rec.Code)
	}
	if rec := get(t, h, &admin, "/api/trend?kpi=happiness"); rec.Code != http.StatusBadRequest {
		t.Errorf("bad kpi: %d", rec.Code)
	}
}

func TestDashboard_LiveWithoutSource(t *testing.T) {
	r := threeDays(t)
	h := NewDashboard(r, nil)
	var lv liveView
	decode(t, get(t, h, &admin, "/api/live"), &lv)
	if lv.QueueLength != nil || lv.AgentsOnline != nil || lv.Today != "2026-11-02" || lv.Contacts == 0 || !lv.ServiceLevel.OK {
		t.Fatalf("live = %+v", lv)
	}
	body := get(t, h, &admin, "/").Body.String()
	if !strings.Contains(body, `id="live-queue">—<`) {
		t.Error("queue tile does not show — without a LiveSource")
	}
}

func TestDashboard_CSVExports(t *testing.T) {
	r := threeDays(t)
	h := NewDashboard(r, nil)
	for _, path := range []string{"/api/kpi.csv?by=agent", "/api/kpi.csv?by=day", "/api/funnel.csv", "/api/trend.csv?kpi=nps",
		"/api/drill.csv?filter=abandoned", "/api/cases.csv", "/api/definitions.csv"} {
		rec := get(t, h, &admin, path)
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Header().Get("Content-Type"))
			continue
		}
		body := strings.TrimPrefix(rec.Body.String(), "\uFEFF")
		recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if err != nil || len(recs) < 2 {
			t.Errorf("%s: %d records, %v", path, len(recs), err)
		}
	}
	recs, _ := csv.NewReader(strings.NewReader(strings.TrimPrefix(get(t, h, &admin, "/api/kpi.csv?by=day").Body.String(), "\uFEFF"))).ReadAll()
	if len(recs) != 5 || recs[1][0] != "2026-10-31" || recs[4][0] != "total" { // header, 3 days, total
		t.Errorf("by-day csv = %v", recs)
	}
}

func TestDashboard_Pages(t *testing.T) {
	r := threeDays(t)
	h := NewDashboard(r, &stubLive{})
	for path, want := range map[string][]string{
		"/":                            {`id="chart-nps"`, `id="chart-sl"`, `id="chart-funnel"`, `id="kpi-table"`, "service_level v1 #", "上海南京路店"},
		"/kpi?by=agent":                {"s-01-a1", `href="drill?by=agent`},
		"/funnel":                      {"Detractor called back within deadline", `data-stage="called_back"`},
		"/drill?by=store&key=s-02":     {`class="conv">cv-`},
		"/cases":                       {`id="case-table"`},
		"/definitions":                 {"threshold_s=20", "repeat_window=24h"},
		"/kpi?by=week&from=2026-10-01": {"2026-W44", "2026-W45"},
	} {
		rec := get(t, h, &admin, path)
		body := rec.Body.String()
		if rec.Code != 200 {
			t.Errorf("%s: %d %s", path, rec.Code, body)
			continue
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: missing %q", path, w)
			}
		}
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Errorf("%s references an external URL", path)
		}
	}
	if csp := get(t, h, &admin, "/").Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP = %q", csp)
	}
}

func decode(t *testing.T, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	b, _ := io.ReadAll(rec.Body)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode: %v: %s", err, b)
	}
}

func keys(rows []Row) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Key)
	}
	return out
}

func ids(s []conv.StoreID) []string {
	var out []string
	for _, x := range s {
		out = append(out, string(x))
	}
	return out
}

func TestDashboard_MountedUnderPrefix(t *testing.T) {
	r := threeDays(t)
	mux := http.NewServeMux()
	mux.Handle("/reports/", http.StripPrefix("/reports", NewDashboard(r, nil)))
	mux.Handle("/reports", http.StripPrefix("/reports", NewDashboard(r, nil)))
	h := asPrincipal(&admin, mux)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/reports?by=agent", nil))
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/reports/?by=agent" {
		t.Fatalf("GET /reports: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/reports/kpi?by=channel", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `href="drill?by=channel`) {
		t.Fatalf("GET /reports/kpi: %d", rec.Code)
	}

	// Mounted without StripPrefix, as console.Mount does.
	plain := http.NewServeMux()
	plain.Handle("/reports/", NewDashboard(r, nil))
	for path, want := range map[string]int{"/reports/": 200, "/reports/api/kpi.csv?by=agent": 200, "/reports/kpi": 200,
		"/reports/api/live": 200, "/reports/nope": 404} {
		rec := httptest.NewRecorder()
		asPrincipal(&admin, plain).ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("unstripped GET %s: %d, want %d", path, rec.Code, want)
		}
	}
	rec = httptest.NewRecorder()
	asPrincipal(&admin, plain).ServeHTTP(rec, httptest.NewRequest("GET", "/reports/api/kpi?by=agent", nil))
	var tb Table
	decode(t, rec, &tb)
	if tb.By != DimAgent || len(tb.Rows) == 0 {
		t.Errorf("unstripped api/kpi by agent: %+v", tb.By)
	}
}

package report

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds the headless browser the console and report tests use.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Skip("chromium not found: run scripts/install-test-deps.sh (Debian package chromium)")
	return ""
}

// artifactDir is where screenshots go: $KEFU_ARTIFACTS when set (CI keeps
// it), else the test's temp dir.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("KEFU_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func TestDashboard_HeadlessBrowser(t *testing.T) {
	exe := chromiumPath(t)
	r := threeDays(t)
	mux := http.NewServeMux()
	mux.Handle("/reports/", http.StripPrefix("/reports", asPrincipal(&admin, NewDashboard(r, &stubLive{}))))
	mux.Handle("/m/", http.StripPrefix("/m", asPrincipal(&manager, NewDashboard(r, nil))))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1440, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first Run starts the browser; it must not carry the timeout
	// (chromedp ties the browser's life to that context).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	dir := artifactDir(t)
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			p := filepath.Join(dir, name)
			t.Logf("screenshot %s", p)
			return os.WriteFile(p, buf, 0o644)
		})
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(sel)+`).length`))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n
	}

	// Overview as HQ: the live tiles are filled by the page's own script.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/reports/"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-live="ok"]`)),
		shot("dashboard-overview.png"),
	); err != nil {
		t.Fatal(err)
	}
	queue, wait, sl, nps := text("#live-queue"), text("#live-wait"), text("#live-sl"), text("#live-nps")
	if queue != "7" || wait != "1m35s" || !strings.HasSuffix(sl, "%") || nps == "—" {
		t.Errorf("live tiles: queue %q wait %q sl %q nps %q", queue, wait, sl, nps)
	}
	// "All" plus six stores per trend chart; fifteen funnel stages.
	if n, m, b := count("#chart-nps path.line"), count("#chart-sl path.line"), count("#chart-funnel rect.bar"); n != 7 || m != 7 || b != 15 {
		t.Errorf("charts: nps lines %d, sl lines %d, funnel bars %d", n, m, b)
	}

	// Drill down from a store row to its conversations.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#kpi-table tr[data-key="s-02"] a.drill`)),
		chromedp.WaitVisible(chromedp.ID("drill-table")),
		shot("dashboard-drill.png"),
	); err != nil {
		t.Fatal(err)
	}
	if n, first := count("#drill-table td.conv"), text("#drill-table td.conv"); n == 0 || !strings.HasPrefix(first, "cv-") {
		t.Errorf("drill-down: %d conversations, first %q", n, first)
	}

	// Funnel and KPI-by-agent pages.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/reports/funnel"),
		chromedp.WaitVisible(chromedp.ID("funnel-table")),
		shot("dashboard-funnel.png"),
	); err != nil {
		t.Fatal(err)
	}
	if n := count("#funnel-table tbody tr"); n != 15 {
		t.Errorf("funnel table rows = %d", n)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/reports/kpi?by=agent"),
		chromedp.WaitVisible(chromedp.ID("kpi-table")),
		shot("dashboard-kpi-agents.png"),
	); err != nil {
		t.Fatal(err)
	}

	// A store manager sees only their store, and "—" without a live source.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/m/"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-live="ok"]`)),
		shot("dashboard-manager.png"),
	); err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#kpi-table tbody tr[data-key]")).map(function(r){return r.dataset.key})`))
	if err != nil {
		t.Fatal(err)
	}
	if q := text("#live-queue"); q != "—" || strings.Join(rows, ",") != "s-01" {
		t.Errorf("manager view: queue %q rows %v", q, rows)
	}
}

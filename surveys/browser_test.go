package surveys

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"kefu/conv"
)

func chromium(t *testing.T) string {
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

// The manager page in a real headless browser: a store manager sees their
// store's case (not the other store's), NPS rows for their store only, and
// closes the case with a root cause from the page.
func TestManagerPage_HeadlessBrowser(t *testing.T) {
	exe := chromium(t)
	h := newHarness(t, func(c *Config, o *Options) { c.ThrottleDays = 0 })
	h.detractor("b1", "store-001", "3分，等太久了")
	h.detractor("b2", "store-002", "2分，别家店的事")
	wang := conv.Principal{User: "wang", Name: "王店长", Role: conv.RoleStoreManager, Stores: []conv.StoreID{"store-001"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.svc.Handler().ServeHTTP(w, r.WithContext(conv.WithPrincipal(r.Context(), wang)))
	}))
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.Flag("headless", true), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-sync", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser (without the timeout)
		t.Fatal(err)
	}
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/surveys/"), chromedp.WaitVisible(chromedp.CSS(`.case[data-state="open"]`))); err != nil {
		t.Fatal(err)
	}
	cases, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#cases")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cases, "等太久了") || strings.Contains(cases, "别家店") {
		t.Fatalf("cases shown to store-001's manager:\n%s", cases)
	}
	keys, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#nps tbody tr")).map(function(r){return r.dataset.key})`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "store-001" {
		t.Fatalf("NPS rows = %v", keys)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(".do-contacted")),
		chromedp.WaitVisible(chromedp.CSS(`.case[data-state="contacted"]`)),
		chromedp.SetValue(chromedp.CSS(".rc"), "等待时间长"),
		chromedp.SetValue(chromedp.CSS(".note"), "已致歉并赠券"),
		chromedp.Click(chromedp.CSS(".do-close")),
		chromedp.WaitVisible(chromedp.CSS(`#cases:not(:has(.case))`)),
	); err != nil {
		t.Fatal(err)
	}
	cs, _ := h.svc.Cases(context.Background(), CaseFilter{Visible: func(id conv.StoreID) bool { return id == "store-001" }})
	if len(cs) != 1 || cs[0].State != CaseClosed || cs[0].RootCause != "等待时间长" || cs[0].Owner != "wang" {
		t.Fatalf("case after the page closed it: %+v", cs)
	}
}

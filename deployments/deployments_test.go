package deployments

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"kefu/app"
)

// m is a loosely typed YAML mapping with helpers for deep lookups.
type m = map[string]any

func readYAML(t *testing.T, path string) []m {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []m
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d m
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

// get walks a path of keys (strings) and indexes (ints).
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			mm, ok := v.(m)
			if !ok {
				return nil
			}
			v = mm[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCompose_TwoGatewaysNginxRedisAOFQdrant(t *testing.T) {
	c := readYAML(t, "compose.yaml")[0]
	svcs, _ := c["services"].(m)
	for _, name := range []string{"kefu-1", "kefu-2", "nginx", "redis", "qdrant"} {
		if svcs[name] == nil {
			t.Fatalf("service %s missing", name)
		}
	}
	for _, name := range []string{"kefu-1", "kefu-2"} {
		s := svcs[name]
		if get(s, "build", "dockerfile") != "deployments/Dockerfile" || get(s, "build", "context") != ".." {
			t.Errorf("%s build = %v", name, get(s, "build"))
		}
		if get(s, "environment", "KEFU_REDIS_ADDR") != "redis:6379" {
			t.Errorf("%s does not use the shared Redis: %v", name, get(s, "environment"))
		}
		if hc := str(get(s, "healthcheck", "test")); !strings.Contains(hc, "/readyz") {
			t.Errorf("%s healthcheck = %s", name, hc)
		}
		if get(s, "depends_on", "redis", "condition") != "service_healthy" {
			t.Errorf("%s must wait for a healthy Redis", name)
		}
	}
	if cmd := str(get(svcs, "redis", "command")); !strings.Contains(cmd, `"--appendonly","yes"`) || !strings.Contains(cmd, "noeviction") {
		t.Errorf("redis command = %s: want AOF and noeviction", cmd)
	}
	if vols := str(get(svcs, "nginx", "volumes")); !strings.Contains(vols, "./nginx.conf:/etc/nginx/nginx.conf") {
		t.Errorf("nginx volumes = %s", vols)
	}
	if ports := str(get(svcs, "nginx", "ports")); !strings.Contains(ports, ":80") {
		t.Errorf("nginx ports = %s", ports)
	}
	// Every named volume used is declared.
	declared, _ := c["volumes"].(m)
	for name, s := range svcs {
		vs, _ := get(s, "volumes").([]any)
		for _, v := range vs {
			src, _, _ := strings.Cut(str(v), ":")
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				if _, ok := declared[src]; !ok {
					t.Errorf("%s uses undeclared volume %s", name, src)
				}
			}
		}
	}
}

func TestDockerfile_StaticNonRootHealthcheck(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	if n := strings.Count(df, "\nFROM "); n < 2 {
		t.Errorf("want a multi-stage build, found %d FROM lines", n)
	}
	for _, want := range []string{"CGO_ENABLED=0", "HEALTHCHECK", "/healthz", "EXPOSE 8080", "-trimpath"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindStringSubmatch(df)
	if user == nil || strings.HasPrefix(user[1], "0") || user[1] == "root" {
		t.Errorf("USER = %v: want a numeric non-root user", user)
	}
	// Files the image copies from the build context exist.
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "COPY" || strings.HasPrefix(f[1], "--from") {
			continue
		}
		for _, src := range f[1 : len(f)-1] {
			if src == "." {
				continue
			}
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("COPY source %s: %v", src, err)
			}
		}
	}
}

func k8sDocs(t *testing.T) map[string]m {
	t.Helper()
	files, _ := filepath.Glob("k8s/*.yaml")
	out := map[string]m{}
	for _, f := range files {
		for _, d := range readYAML(t, f) {
			out[str(d["kind"])] = d
		}
	}
	return out
}

func matches(selector, labels any) bool {
	sel, _ := selector.(m)
	lab, _ := labels.(m)
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if lab[k] != v {
			return false
		}
	}
	return true
}

func TestK8s_ProbesSelectorsAndScaling(t *testing.T) {
	docs := k8sDocs(t)
	for _, kind := range []string{"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap", "Secret", "Kustomization"} {
		if docs[kind] == nil {
			t.Fatalf("no %s in deployments/k8s", kind)
		}
	}
	dep := docs["Deployment"]
	labels := get(dep, "spec", "template", "metadata", "labels")
	if !matches(get(dep, "spec", "selector", "matchLabels"), labels) {
		t.Error("Deployment selector does not match its pod labels")
	}
	ctr := get(dep, "spec", "template", "spec", "containers", 0)
	if get(ctr, "ports", 0, "containerPort") != 8080 || get(ctr, "ports", 0, "name") != "http" {
		t.Errorf("container ports = %v", get(ctr, "ports"))
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/healthz"} {
		if get(ctr, probe, "httpGet", "path") != path || get(ctr, probe, "httpGet", "port") != "http" {
			t.Errorf("%s = %v, want GET %s on port http", probe, get(ctr, probe), path)
		}
	}
	if get(dep, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true || get(ctr, "securityContext", "readOnlyRootFilesystem") != true {
		t.Error("pods must run as non-root with a read-only root filesystem")
	}
	if get(ctr, "envFrom", 0, "secretRef", "name") != get(docs["Secret"], "metadata", "name") {
		t.Error("container does not take its env from the Secret")
	}
	if get(dep, "spec", "template", "spec", "volumes", 0, "configMap", "name") != get(docs["ConfigMap"], "metadata", "name") {
		t.Error("config volume does not use the ConfigMap")
	}
	if g, _ := get(dep, "spec", "template", "spec", "terminationGracePeriodSeconds").(int); g < 25 {
		t.Errorf("terminationGracePeriodSeconds = %d: kefu drains for up to 20 s plus preStop", g)
	}

	svc := docs["Service"]
	if !matches(get(svc, "spec", "selector"), labels) || get(svc, "spec", "ports", 0, "targetPort") != "http" {
		t.Errorf("Service selector/ports = %v %v", get(svc, "spec", "selector"), get(svc, "spec", "ports"))
	}
	hpa := docs["HorizontalPodAutoscaler"]
	if get(hpa, "spec", "scaleTargetRef", "name") != get(dep, "metadata", "name") || get(hpa, "spec", "scaleTargetRef", "kind") != "Deployment" {
		t.Errorf("HPA target = %v", get(hpa, "spec", "scaleTargetRef"))
	}
	if min, _ := get(hpa, "spec", "minReplicas").(int); min < 2 {
		t.Errorf("HPA minReplicas = %d, want >= 2", min)
	}
	pdb := docs["PodDisruptionBudget"]
	if !matches(get(pdb, "spec", "selector", "matchLabels"), labels) || get(pdb, "spec", "minAvailable") == nil {
		t.Errorf("PDB = %v", get(pdb, "spec"))
	}

	// The ConfigMap carries exactly deployments/kefu.yaml.
	want, _ := os.ReadFile("kefu.yaml")
	if got := str(get(docs["ConfigMap"], "data", "kefu.yaml")); got != string(want) {
		t.Error("k8s/configmap.yaml differs from deployments/kefu.yaml: regenerate it (sed 's/^/    /')")
	}
	// Kustomization lists every manifest.
	files, _ := filepath.Glob("k8s/*.yaml")
	res := str(get(docs["Kustomization"], "resources"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !strings.Contains(res, b) {
			t.Errorf("kustomization.yaml does not list %s", b)
		}
	}
}

func TestConfig_ScaleOutConfigIsValid(t *testing.T) {
	env := []string{"KEFU_BOT_KB=../configs/kb.sample.jsonl"}
	for k, v := range get(k8sDocs(t)["Secret"], "stringData").(m) {
		if k == "KEFU_REDIS_PASSWORD" {
			continue
		}
		env = append(env, k+"="+str(v))
	}
	slices.Sort(env)
	cfg, err := app.Load("kefu.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("deployments/kefu.yaml with the Secret's env: %v", err)
	}
	if cfg.Redis.Addr != "redis:6379" || cfg.Listen != "0.0.0.0:8080" || cfg.Bot.Qdrant == nil || cfg.Bot.Qdrant.Addr != "qdrant:6334" {
		t.Errorf("redis %q listen %q qdrant %+v", cfg.Redis.Addr, cfg.Listen, cfg.Bot.Qdrant)
	}
	if cfg.Channels[0].AppSecret != "change-me" {
		t.Errorf("secret env did not override the file: %q", cfg.Channels[0].AppSecret)
	}
}

func nginxBinary() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func TestNginx_ConfigTest(t *testing.T) {
	bin := nginxBinary()
	if bin == "" {
		t.Skip("nginx not installed: `apt-get install nginx` (to be added to scripts/install-test-deps.sh) to run nginx -t on deployments/nginx.conf")
	}
	b, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	// Compose service names do not resolve here; nginx -t resolves upstream
	// hosts, so point them at a local listener.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conf := strings.NewReplacer("kefu-1:8080", ln.Addr().String(), "kefu-2:8080", ln.Addr().String()).Replace(string(b))
	dir := t.TempDir()
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-t", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path,
		"-g", "pid "+filepath.Join(dir, "nginx.pid")+";")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test is successful") {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// knownSeries are the metric names the binary exports, read from the
// collectors' source so the alerts and dashboard cannot drift from them.
func knownSeries(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{"up": true}
	re := regexp.MustCompile(`"(kefu_[a-z_]+)"`)
	for _, f := range []string{"../gateway/metrics.go", "../report/metrics.go", "../app/engine_metrics.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range re.FindAllStringSubmatch(string(b), -1) {
			known[s[1]] = true
		}
	}
	return known
}

var seriesRE = regexp.MustCompile(`\bkefu_[a-z_]+`)

func checkSeries(t *testing.T, where, expr string, known map[string]bool, used map[string]bool) {
	t.Helper()
	for _, s := range seriesRE.FindAllString(expr, -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "_bucket"), "_sum"), "_count")
		if !known[s] && !known[base] {
			t.Errorf("%s uses unknown series %s", where, s)
		}
		used[base] = true
	}
}

func TestAlertsAndDashboard_UseExportedSeries(t *testing.T) {
	known := knownSeries(t)
	used := map[string]bool{}
	doc := readYAML(t, "prometheus/alerts.yaml")[0]
	groups, _ := doc["groups"].([]any)
	n := 0
	for _, g := range groups {
		rules, _ := get(g, "rules").([]any)
		for _, r := range rules {
			n++
			name := str(get(r, "alert"))
			if name == "" || str(get(r, "expr")) == "" || str(get(r, "labels", "severity")) == "" || str(get(r, "annotations", "summary")) == "" {
				t.Errorf("rule %v lacks alert/expr/severity/summary", r)
			}
			checkSeries(t, "alert "+name, str(get(r, "expr")), known, used)
		}
	}
	// Every signal the issue asks to alert on is covered.
	for _, s := range []string{"kefu_ack_seconds", "kefu_requests_total", "kefu_dedupe_hits_total", "kefu_dead_letters",
		"kefu_token_refresh_total", "kefu_queue_oldest_seconds", "kefu_report_lag_seconds"} {
		if !used[s] {
			t.Errorf("no alert on %s", s)
		}
	}

	b, err := os.ReadFile("grafana/kefu-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	panels := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		panels++
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkSeries(t, "panel "+p.Title, tg.Expr, known, map[string]bool{})
		}
	}
	if dash.UID == "" || panels < 10 || n < 10 {
		t.Errorf("dashboard uid %q with %d panels; %d alert rules", dash.UID, panels, n)
	}
}

func TestPrometheus_ScrapesBothGatewaysAndLoadsRules(t *testing.T) {
	c := readYAML(t, "prometheus/prometheus.yaml")[0]
	if rules := str(c["rule_files"]); !strings.Contains(rules, "alerts.yaml") {
		t.Errorf("rule_files = %s", rules)
	}
	job := get(c, "scrape_configs", 0)
	if get(job, "job_name") != "kefu" { // the alerts' up{job="kefu"}
		t.Errorf("job_name = %v", get(job, "job_name"))
	}
	targets := str(get(job, "static_configs", 0, "targets"))
	svcs, _ := readYAML(t, "compose.yaml")[0]["services"].(m)
	for name := range svcs {
		if strings.HasPrefix(name, "kefu-") && !strings.Contains(targets, name+":8080") {
			t.Errorf("gateway %s is not scraped (targets %s)", name, targets)
		}
	}
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRun_UsageAndVersion(t *testing.T) {
	if code, _, errs := runCmd(); code != 2 || !strings.Contains(errs, "Usage:") {
		t.Fatalf("no args: %d %q", code, errs)
	}
	if code, _, errs := runCmd("frobnicate"); code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Fatalf("unknown: %d %q", code, errs)
	}
	if code, out, _ := runCmd("version"); code != 0 || !strings.HasPrefix(out, "kefu ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestCheckConfig(t *testing.T) {
	root, _ := filepath.Abs("../..")
	t.Chdir(root)
	if code, out, errs := runCmd("checkconfig", "-c", "configs/kefu.yaml"); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("sample config: %d %q %q", code, out, errs)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte(`listen: ""
channels:
  - name: demo
    type: wechat_oa
    app_id: notwx
    token: ""
    encoding_aes_key: tooshort
gateway:
  passive_budget: 9s
`), 0o600)
	code, _, errs := runCmd("checkconfig", "-c", bad)
	if code != 1 {
		t.Fatalf("bad config accepted: %d", code)
	}
	for _, want := range []string{"listen:", "channels[0].app_id:", "channels[0].token:", "channels[0].encoding_aes_key:", "gateway.passive_budget:", "channels[0].app_secret:"} {
		if !strings.Contains(errs, "  - "+want) {
			t.Errorf("checkconfig does not explain %s:\n%s", want, errs)
		}
	}
	garbage := filepath.Join(t.TempDir(), "garbage.yaml")
	_ = os.WriteFile(garbage, []byte("listen: [unclosed\n"), 0o600)
	if code, _, errs := runCmd("checkconfig", "-c", garbage); code != 1 || !strings.Contains(errs, "garbage.yaml") {
		t.Fatalf("garbage: %d %q", code, errs)
	}
}

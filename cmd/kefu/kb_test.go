package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"kefu/app"
	"kefu/internal/testnet"
	"kefu/wxsim"
)

func freeAddr(t *testing.T) string { return testnet.FreeAddr(t) }

// The curation verbs (`kefu kb misses`, `tune` without --kb, `link`, `draft`,
// `suggestions`, `approve`, `reject`) work on the running server,
// which journals the bot's misses into its engine (here the embedded one,
// which no other process can open while the server runs).
func TestKB_CurationAgainstTheRunningServer(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	sim := freeAddr(t)
	// Approving rewrites the KB file: work on a copy.
	kbFile := filepath.Join(t.TempDir(), "kb.jsonl")
	sample, err := os.ReadFile(filepath.Join(root, "configs/kb.sample.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kbFile, sample, 0o644); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"KEFU_LISTEN": freeAddr(t), "KEFU_DATA_DIR": t.TempDir(), "KEFU_ADMIN_TOKEN": "admin-test-token",
		"KEFU_BOT_KB": kbFile, "KEFU_SIMULATOR_LISTEN": sim,
		"KEFU_CONSOLE_LISTEN": freeAddr(t), "KEFU_WECHAT_API_BASE": "http://" + sim, "KEFU_WECHAT_WECOM_API_BASE": "http://" + sim,
	} {
		t.Setenv(k, v)
	}
	cfgPath := filepath.Join(root, "configs/kefu.yaml")
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Build(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	defer func() {
		cancel()
		<-done
		a.Close()
	}()

	ch := cfg.Channels[0]
	c := &wxsim.OAClient{URL: "http://" + cfg.Listen + "/wechat/oa/" + ch.Name, Token: ch.Token, AppID: ch.AppID,
		EncodingAESKey: ch.EncodingAESKey, Mode: wxsim.ModeSafe, API: a.Sim, RetryWait: -1}
	for i, who := range []string{"o_miss1", "o_miss2"} {
		if _, err := c.SendText(context.Background(), who, "你们卖不卖火箭发动机", int64(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	deadline := time.Now().Add(10 * time.Second)
	for { // the journal is written behind the reply
		out.Reset()
		errOut.Reset()
		if code := cmdKB([]string{"misses", "-c", cfgPath}, &out, &errOut); code != 0 {
			t.Fatalf("kb misses: exit %d: %s", code, errOut.String())
		}
		if strings.Contains(out.String(), "×2") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "×2") || !strings.Contains(out.String(), "火箭发动机") {
		t.Fatalf("kb misses printed:\n%s", out.String())
	}
	out.Reset()
	if code := cmdKB([]string{"tune", "-c", cfgPath, "--json"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), `"labels":0`) {
		t.Fatalf("kb tune: exit %d: %s %s", code, out.String(), errOut.String())
	}

	// An agent links the missed question to an entry; once approved the
	// bot answers it with that entry.
	run := func(args ...string) string {
		t.Helper()
		var o, e bytes.Buffer
		if code := cmdKB(args, &o, &e); code != 0 {
			t.Fatalf("kb %v: exit %d: %s", args, code, e.String())
		}
		return o.String()
	}
	run("link", "你们卖不卖火箭发动机", "hours-001", "--agent", "agent1", "-c", cfgPath)
	run("draft", "可以开发票吗公司抬头", "可以，结账时告诉收银员公司抬头和税号。", "-c", cfgPath)
	list := run("suggestions", "-c", cfgPath)
	if !strings.Contains(list, "link") || !strings.Contains(list, "hours-001") || !strings.Contains(list, "draft") {
		t.Fatalf("suggestions:\n%s", list)
	}
	var linkID, draftID string
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "link" {
			linkID = f[0]
		} else if len(f) > 1 && f[1] == "draft" {
			draftID = f[0]
		}
	}
	run("approve", linkID, "--agent", "manager", "-c", cfgPath)
	run("reject", draftID, "--agent", "manager", "-c", cfgPath)
	if got := run("suggestions", "-c", cfgPath); !strings.Contains(got, "no proposals waiting") {
		t.Fatalf("suggestions after deciding both:\n%s", got)
	}
	d, err := c.SendText(context.Background(), "o_miss3", "你们卖不卖火箭发动机", 200)
	if err != nil || d.Reply == nil || !strings.Contains(d.Reply.Content, "营业时间") {
		t.Fatalf("after approval the bot answered %+v, %v", d.Reply, err)
	}
	if b, _ := os.ReadFile(kbFile); !strings.Contains(string(b), "火箭发动机") {
		t.Fatal("approved link not written to the KB file")
	}
	errOut.Reset()
	if code := cmdKB([]string{"approve", "no-such-id", "-c", cfgPath}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "404") {
		t.Fatalf("unknown suggestion: exit %d: %s", code, errOut.String())
	}

	// A wrong token is refused with the server's reason.
	t.Setenv("KEFU_ADMIN_TOKEN", "wrong")
	errOut.Reset()
	if code := cmdKB([]string{"misses", "-c", cfgPath}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "401") {
		t.Fatalf("wrong token: exit %d: %s", code, errOut.String())
	}
}

package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"kefu/internal/testnet"
	"kefu/wxsim"
)

// Crash-test knobs. The passive budget is tiny so that many messages are
// acked with "success" before they are answered (the answer then goes
// through custom/send, which the simulator slows down): a kill -9 then
// lands while accepted messages are unanswered, answers sit in the outbox
// and a send is in flight.
const (
	crashMessages      = 600
	crashSenders       = 24
	crashRecoveryAfter = 5 * time.Second
	crashSendLatency   = 30 * time.Millisecond
	// crashOutboxLease mirrors gateway's outLease: an outbox job the killed
	// process had claimed is invisible to the restarted one for this long.
	crashOutboxLease = time.Minute
	// crashOutboxBatch mirrors the sender's claim size: the most sends the
	// killed process can have had in flight.
	crashOutboxBatch = 64
)

// TestCrash_KillDashNineLosesNoAckedMessage builds the kefu binary, runs
// `kefu serve` on the embedded engine under load from simulated WeChat
// (3 retries, like the real platform), SIGKILLs it mid-flight, restarts it
// on the same data directory and port, and checks that every message WeChat
// got a 200 for is answered exactly once — by the passive reply or by one
// custom/send — and that nothing is answered twice except the one case no
// gateway can rule out (a custom/send that reached WeChat when the process
// died before recording it; WeChat's API has no idempotency key).
//
// It runs twice. With the default passive budget almost every answer is
// ready in time, so an ack means its outcome was durably written first (one
// write, then the passive reply): the kill must not leave an acked message
// unanswered. With a 1 ns budget every message takes the other path —
// claimed and enqueued durably, acked with "success", answered through
// custom/send — so at the kill there are accepted-but-unanswered messages,
// answers in the outbox and sends in flight, and recovery must answer them.
func TestCrash_KillDashNineLosesNoAckedMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 test takes about half a minute")
	}
	t.Run("passive answers", func(t *testing.T) { runCrash(t, 3*time.Second) })
	t.Run("answers through the send API", func(t *testing.T) { runCrash(t, time.Nanosecond) })
}

func runCrash(t *testing.T, passiveBudget time.Duration) {
	dir := t.TempDir()
	kb, err := findFile("configs/kb.sample.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	serve := kefuServeCommand(t, dir)

	sim := wxsim.NewAPI(wxsim.APIOptions{OA: []wxsim.OAApp{{AppID: oaAppID, Secret: oaSecret, OriginalID: oaGhID}}})
	simURL := sim.Start()
	t.Cleanup(sim.Close)
	sim.SetLatency("/cgi-bin/message/custom/send", crashSendLatency)

	addr := freeAddr(t)
	// Both starts share the data_dir: the engine (the gateway's durable
	// state) and the bot's persisted index, as `kefu serve` would.
	cfg := kefuConfig{Listen: addr, DataDir: filepath.Join(dir, "data"), SimURL: simURL, KB: kb,
		PassiveBudget: passiveBudget, RecoveryAfter: crashRecoveryAfter,
		OutboundBaseBackoff: 100 * time.Millisecond, OutboundMaxBackoff: time.Second}

	start := func(n int) *exec.Cmd {
		cfgPath := filepath.Join(dir, fmt.Sprintf("kefu-%d.yaml", n))
		if err := os.WriteFile(cfgPath, []byte(cfg.YAML()), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := serve(cfgPath)
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("kefu-%d.log", n)))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
		if err := waitHealthy(addr, 60*time.Second); err != nil {
			t.Fatalf("kefu #%d: %v\n%s", n, err, tail(logf.Name()))
		}
		return cmd
	}
	first := start(1)

	// Simulated WeChat: every message from its own customer, so a customer's
	// inbox holds exactly the API answers to that one message.
	wx := oaClient("http://" + addr + oaPath)
	wx.API = sim
	wx.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: crashSenders}}
	wx.RetryWait = 700 * time.Millisecond // WeChat waits ~5 s; shorter keeps the test short
	reqs := make([]*wxsim.CallbackRequest, crashMessages)
	for i := range reqs {
		if reqs[i], err = wx.BuildOARequest(&wxsim.Message{FromUserName: openIDOf(i), MsgType: "text", Content: questions[i%len(questions)]}); err != nil {
			t.Fatal(err)
		}
	}
	dels := make([]*wxsim.Delivery, crashMessages)
	ackedAt := make([]time.Time, crashMessages)
	var acked atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < crashSenders; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= crashMessages {
					return
				}
				d, _ := wx.Deliver(context.Background(), reqs[i])
				dels[i] = d
				if d.Acked {
					ackedAt[i] = time.Now()
					acked.Add(1)
				}
				// Pace the load so the kill lands in the middle of it.
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}

	// Kill once a third of the messages are acked: some answered, some
	// accepted and waiting, some in the outbox, some being sent.
	for acked.Load() < crashMessages/3 {
		time.Sleep(5 * time.Millisecond)
	}
	_ = first.Process.Signal(syscall.SIGKILL)
	_ = first.Wait()
	killedAt := time.Now()
	t.Logf("SIGKILL after %d acked messages", acked.Load())
	time.Sleep(300 * time.Millisecond)
	start(2)
	restartedAt := time.Now()
	t.Logf("restarted in %s", restartedAt.Sub(killedAt).Round(time.Millisecond))
	wg.Wait()

	// Every acked message must end up answered. An answer claimed by the
	// killed sender comes back after its outbox lease; recovery of accepted
	// messages after recovery_after.
	deadline := killedAt.Add(crashOutboxLease + crashRecoveryAfter + 15*time.Second)
	var missing []int
	for {
		missing = missing[:0]
		for i, d := range dels {
			if d.Acked && d.Reply == nil && len(sim.Inbox(openIDOf(i))) == 0 {
				missing = append(missing, i)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Let late duplicates (if any) show up before judging exactly-once.
	time.Sleep(time.Second)

	var nAcked, nPassive, nAPI, nUnacked, nUnackedAnswered, nAckedBeforeKillAnsweredAfter, inFlightDup int
	var failures []string
	fail := func(format string, a ...any) {
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, a...))
		}
	}
	for i, d := range dels {
		inbox := sim.Inbox(openIDOf(i))
		if !d.Acked {
			nUnacked++
			if len(inbox) > 0 || d.Reply != nil {
				nUnackedAnswered++ // accepted, but the ack was lost with the process: answering is right
			}
			if len(inbox) > 1 {
				fail("message %d (not acked) answered %d times via API", i, len(inbox))
			}
			continue
		}
		nAcked++
		switch {
		case d.Reply != nil && len(inbox) > 0:
			fail("message %d answered passively and %d× via API", i, len(inbox))
		case d.Reply != nil:
			nPassive++
		case len(inbox) == 0:
			fail("message %d acked at %s but never answered (lost)", i, ackedAt[i].Format("15:04:05.000"))
		case len(inbox) == 1:
			nAPI++
			if ackedAt[i].Before(killedAt) && inbox[0].At.After(restartedAt) {
				nAckedBeforeKillAnsweredAfter++
			}
		default:
			// The one tolerated duplicate: the first copy was sent by the
			// killed process (it reached WeChat, but the process died
			// before recording it as sent), the second by the restarted
			// one. No gateway can avoid it: custom/send has no idempotency
			// key. The sender sends a claimed batch in parallel, so up to a
			// batch of sends can be in flight at the kill.
			if len(inbox) == 2 && inbox[0].At.Before(restartedAt) && !inbox[1].At.Before(restartedAt) {
				inFlightDup++
				nAPI++
				continue
			}
			fail("message %d answered %d× via API (at %v)", i, len(inbox), sentTimes(inbox))
		}
	}
	t.Logf("%d messages: %d acked (%d answered passively, %d via custom/send, %d of those acked before the kill and answered after the restart), %d never acked (%d of them answered anyway), %d duplicate from a send in flight at the kill",
		crashMessages, nAcked, nPassive, nAPI, nAckedBeforeKillAnsweredAfter, nUnacked, nUnackedAnswered, inFlightDup)
	t.Logf("all acked messages answered %s after the kill", time.Since(killedAt).Round(time.Second))
	if len(failures) > 0 {
		t.Errorf("%d problems:\n  %s\nkefu log after restart:\n%s", len(failures), strings.Join(failures, "\n  "), tail(filepath.Join(dir, "kefu-2.log")))
	}
	if inFlightDup > crashOutboxBatch {
		t.Errorf("%d in-flight duplicates; at most one claimed outbox batch (%d) can be in flight", inFlightDup, crashOutboxBatch)
	}
	if nAckedBeforeKillAnsweredAfter == 0 {
		t.Logf("note: no acked message was left unanswered by the kill this time; the recovery path was not exercised")
	}
}

// kefuServeCommand returns a constructor for `kefu serve -c FILE`: the
// real binary built from ./cmd/kefu, or, if that does not build (the tree
// is shared and a package may be mid-change), this test binary running the
// same app.Load/app.Build/App.Serve code as `bench -child kefu`.
func kefuServeCommand(t *testing.T, dir string) func(cfg string) *exec.Cmd {
	t.Helper()
	gomod, err := findFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "kefu")
	build := exec.Command("go", "build", "-o", bin, "./cmd/kefu")
	build.Dir = filepath.Dir(gomod)
	if out, err := build.CombinedOutput(); err != nil {
		t.Logf("cannot build ./cmd/kefu (%v), running kefu from the test binary instead:\n%s", err, out)
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		return func(cfg string) *exec.Cmd {
			b, _ := os.ReadFile(cfg)
			listen := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "listen:"))
			return exec.Command(exe, "bench", "-child", "kefu", "-c", cfg, "-listen", listen)
		}
	}
	return func(cfg string) *exec.Cmd { return exec.Command(bin, "serve", "-c", cfg) }
}

// freeAddr picks a loopback port for a server that must come back on the
// same address after a restart, as a WeChat callback URL does.
func freeAddr(t *testing.T) string { return testnet.FreeAddr(t) }

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func sentTimes(s []wxsim.Sent) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.At.Format("15:04:05.000"))
	}
	return out
}

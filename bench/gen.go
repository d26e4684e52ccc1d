package bench

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"kefu/wxsim"
)

// The OA every target serves: the same identity as configs/kefu.yaml's
// "demo" channel, so a bench config reads like the sample one.
const (
	oaAppID  = "wxd0e1f2a3b4c5d6e7"
	oaSecret = "demo-oa-secret-change-me"
	oaToken  = "demotoken123"
	oaAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	oaGhID   = "gh_bench0000001"
	oaPath   = "/wechat/oa/demo"
)

// questions are customer phrasings of sample-KB entries, so kefu's bot
// takes its normal answer path rather than a fallback.
var questions = []string{
	"你们几点开门", "我想退货", "退款多久到账", "积分怎么获得", "多久能送到",
	"怎么查物流", "附近的门店在哪里", "怎么开发票", "支持哪些支付方式", "优惠券怎么用",
	"保修期多久", "礼品卡余额怎么查", "晚上营业到几点", "运费怎么算", "忘记会员卡号怎么办",
	"可以送货上门吗",
}

// callback is one pre-built safe-mode push: what WeChat would POST.
type callback struct {
	uri    []byte // path and query (signature, timestamp, nonce, openid, encrypt_type, msg_signature)
	body   []byte // <xml><ToUserName/><Encrypt/></xml>
	openID string
	msgID  int64
}

// oaClient is the simulated WeChat side of the demo OA (safe mode).
func oaClient(url string) *wxsim.OAClient {
	return &wxsim.OAClient{URL: url, Token: oaToken, AppID: oaAppID, EncodingAESKey: oaAESKey, OriginalID: oaGhID, Mode: wxsim.ModeSafe}
}

func openIDOf(i int) string { return fmt.Sprintf("oBench%022d", i) }

// buildPool pre-builds n callbacks with unique MsgIds, spread over users
// customers, in parallel. Building (AES + two SHA-1 signatures per push)
// happens before any target is measured, so during a run the generator only
// does HTTP — and does exactly the same work for every target.
func buildPool(n, users int) ([]callback, error) {
	const base = "http://bench.invalid"
	c := oaClient(base + oaPath)
	pool := make([]callback, n)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				u := openIDOf(i % users)
				id := wxsim.NextMsgID()
				r, err := c.BuildOARequest(&wxsim.Message{FromUserName: u, MsgType: "text", Content: questions[i%len(questions)], MsgID: id})
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				pool[i] = callback{uri: []byte(r.URL[len(base):]), body: r.Body, openID: u, msgID: id}
			}
		}(w)
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return nil, err
	}
	return pool, nil
}

// loadSpec describes one measured run against one target.
type loadSpec struct {
	addr     string // host:port
	conns    int
	warmup   time.Duration
	duration time.Duration
	// wrap allows reusing the pool when it runs out. Only for targets that
	// do not deduplicate (ceiling, silenceper): for kefu a reused MsgId is a
	// retry, which takes the cheaper dedupe path and would flatter it.
	wrap bool
	// copies sends each callback this many times (1 + WeChat's retries);
	// the first two concurrently, the rest one after another.
	copies int
	// keep records, per pool index, the response bodies (duplicate check).
	keep bool
	// sampleEvery keeps every n-th response body for a reply check.
	sampleEvery int
	// onRecord is called once when the measured window starts.
	onRecord func()
	// encrypt builds every push while sending (AES, signatures, unique
	// MsgId) instead of taking it from the pool, like a generator that
	// encrypts on the fly; users spreads its customers.
	encrypt bool
	users   int
	// rate > 0: open loop. Request i is due at start + i/rate; a worker
	// waits for its request's due time, and the latency is counted from
	// it, so time a request spent waiting for a free connection behind a
	// slow one counts too (no coordinated omission). conns bounds the
	// requests in flight.
	rate float64
}

// loadResult is what the generator measured.
type loadResult struct {
	Requests   uint64        // completed in the measured window
	Errors     uint64        // transport errors and timeouts
	Non200     uint64        // answered with a status other than 200
	Passive    uint64        // 200 with an XML passive reply
	Acks       uint64        // 200 with "success" or an empty body
	Elapsed    time.Duration // measured window
	Exhausted  bool          // the pool ran out before the window ended
	FirstError string        // the first error or non-200 seen, for the report
	GenCPU     time.Duration // generator process CPU time in the window
	lat        hist
	samples    []sample
	kept       [][][]byte // per pool index, the bodies of each copy
	sent       int        // pool entries used (warm-up included)
}

type sample struct {
	openID string
	body   []byte
}

// errPoolExhausted stops a run that would otherwise resend MsgIds.
var errPoolExhausted = errors.New("request pool exhausted")

// runLoad drives a closed loop: conns workers, each with its own
// connection, send the next pooled callback as soon as the previous one is
// answered (or, with spec.rate, when it is due). Latencies of requests that
// start (are due) in the measured window are recorded.
func runLoad(pool []callback, spec loadSpec) (*loadResult, error) {
	if spec.copies < 1 {
		spec.copies = 1
	}
	hc := &fasthttp.HostClient{
		Addr:                          spec.addr,
		MaxConns:                      spec.conns * 2,
		ReadTimeout:                   10 * time.Second,
		WriteTimeout:                  10 * time.Second,
		MaxIdleConnDuration:           time.Minute,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		// Retrying a POST would silently turn one push into two.
		RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
	}
	defer hc.CloseIdleConnections()
	res := &loadResult{}
	if spec.keep {
		res.kept = make([][][]byte, len(pool))
	}
	var next atomic.Int64
	next.Store(-1)
	var exhausted atomic.Bool
	var enc *wxsim.OAClient
	if spec.encrypt {
		enc = oaClient("http://bench.invalid" + oaPath)
	}
	start := time.Now()
	recordFrom := start.Add(spec.warmup)
	end := recordFrom.Add(spec.duration)
	var cpuStart atomic.Int64
	outs := make([]*workerStats, spec.conns)
	var wg sync.WaitGroup
	// The CPU clock starts when the warm-up ends (first worker to see it).
	var cpuOnce sync.Once
	for w := 0; w < spec.conns; w++ {
		out := &workerStats{}
		outs[w] = out
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			// resp2 receives the concurrent second copy (-dup).
			resp2 := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp2)
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				i := int(next.Add(1))
				if spec.rate > 0 {
					due := start.Add(time.Duration(float64(i) / spec.rate * float64(time.Second)))
					if !due.Before(end) {
						return
					}
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
					t0 = due
				}
				var cb *callback
				if enc != nil {
					u := openIDOf(i % spec.users)
					r, err := enc.BuildOARequest(&wxsim.Message{FromUserName: u, MsgType: "text", Content: questions[i%len(questions)]})
					if err != nil {
						panic(err) // static, valid inputs
					}
					cb = &callback{uri: []byte(r.URL[len("http://bench.invalid"):]), body: r.Body, openID: u}
				} else if i >= len(pool) {
					if !spec.wrap {
						exhausted.Store(true)
						return
					}
					i %= len(pool)
				}
				if cb == nil {
					cb = &pool[i]
				}
				recording := !t0.Before(recordFrom)
				if recording {
					cpuOnce.Do(func() {
						cpuStart.Store(int64(processCPU()))
						if spec.onRecord != nil {
							spec.onRecord()
						}
					})
				}
				fill := func(r *fasthttp.Request) {
					r.Header.SetMethod(fasthttp.MethodPost)
					r.SetRequestURIBytes(cb.uri)
					r.Header.SetHost(spec.addr)
					r.Header.SetContentType("text/xml")
					r.SetBodyRaw(cb.body)
				}
				fill(req)
				var status2 int
				var err2 error
				var lat2 time.Duration
				var wg2 sync.WaitGroup
				if spec.copies > 1 {
					// A retry arriving while the first delivery is still
					// being answered: the hardest case for dedupe.
					wg2.Add(1)
					go func() {
						defer wg2.Done()
						r2 := fasthttp.AcquireRequest()
						defer fasthttp.ReleaseRequest(r2)
						fill(r2)
						t2 := time.Now()
						err2 = hc.Do(r2, resp2)
						lat2 = time.Since(t2)
						status2 = resp2.StatusCode()
					}()
				}
				err := hc.Do(req, resp)
				lat := time.Since(t0)
				status := resp.StatusCode()
				body := resp.Body()
				if recording {
					out.lat.record(lat)
					out.n++
					out.classify(err, status, body)
					if spec.sampleEvery > 0 && i%spec.sampleEvery == 0 && err == nil {
						out.samples = append(out.samples, sample{openID: cb.openID, body: append([]byte(nil), body...)})
					}
				}
				if spec.copies > 1 {
					wg2.Wait()
					bodies := make([][]byte, 0, spec.copies)
					bodies = append(bodies, keepBody(err, status, body))
					bodies = append(bodies, keepBody(err2, status2, resp2.Body()))
					if recording {
						out.lat.record(lat2)
						out.n++
						out.classify(err2, status2, resp2.Body())
					}
					for c := 2; c < spec.copies; c++ {
						t1 := time.Now()
						e := hc.Do(req, resp)
						if recording {
							out.lat.record(time.Since(t1))
							out.n++
							out.classify(e, resp.StatusCode(), resp.Body())
						}
						bodies = append(bodies, keepBody(e, resp.StatusCode(), resp.Body()))
					}
					if spec.keep {
						res.kept[i] = bodies
					}
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(recordFrom)
	if res.Elapsed > spec.duration {
		res.Elapsed = spec.duration
	}
	if exhausted.Load() {
		res.Exhausted = true
		if e := time.Since(recordFrom); e < spec.duration {
			res.Elapsed = e
		}
	}
	if c := cpuStart.Load(); c != 0 {
		res.GenCPU = processCPU() - time.Duration(c)
	}
	for _, o := range outs {
		res.lat.merge(&o.lat)
		res.Requests += o.n
		res.Errors += o.errs
		res.Non200 += o.non200
		res.Passive += o.passive
		res.Acks += o.acks
		res.samples = append(res.samples, o.samples...)
		if res.FirstError == "" {
			res.FirstError = o.firstErr
		}
	}
	res.sent = int(next.Load()) + 1
	if enc != nil {
		res.sent = 0
	} else if res.sent > len(pool) {
		res.sent = len(pool)
	}
	if res.Exhausted && res.Requests == 0 {
		return res, errPoolExhausted
	}
	return res, nil
}

// workerStats is one generator worker's private tally.
type workerStats struct {
	lat                            hist
	n, errs, non200, passive, acks uint64
	samples                        []sample
	firstErr                       string
}

func (o *workerStats) classify(err error, status int, body []byte) {
	switch {
	case err != nil:
		o.errs++
		if o.firstErr == "" {
			o.firstErr = err.Error()
		}
	case status != fasthttp.StatusOK:
		o.non200++
		if o.firstErr == "" {
			o.firstErr = fmt.Sprintf("status %d: %.100s", status, body)
		}
	case len(body) == 0 || bytes.Equal(body, []byte("success")):
		o.acks++
	default:
		o.passive++
	}
}

// keepBody records one copy's outcome for the duplicate check: the body of
// a 200, or nil for anything else.
func keepBody(err error, status int, body []byte) []byte {
	if err != nil || status != fasthttp.StatusOK {
		return nil
	}
	return append([]byte{}, body...)
}

// processCPU is this process's user+system CPU time: the generator's cost.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package gateway

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"

	"kefu/conv"
	"kefu/wxsim"
)

// BenchmarkOASafeMode measures the whole OA callback path over real HTTP on
// loopback: verify, decrypt, parse, ClaimAndEnqueue (embedded: fsync with
// group commit; Redis: one Lua call), answer, commit, encrypt the passive
// reply. Every request is a new message; the requests are built before the
// timer starts so the client's crypto is not measured.
//
//	go test -run '^$' -bench OASafeMode -benchmem ./gateway/
func BenchmarkOASafeMode(b *testing.B) {
	for _, kind := range []engineKind{embeddedEngine, redisEngine} {
		b.Run(string(kind), func(b *testing.B) {
			e := newEnv(b, kind)
			e.h.set(func(s *scripted) {
				s.replies = func(conv.Message) []conv.Reply { return []conv.Reply{conv.Text("营业时间为每天 9:00–22:00")} }
			})
			c := &wxsim.OAClient{URL: e.url + "/wechat/oa/demo", Token: testOAToken, AppID: testAppID, EncodingAESKey: testOAKey, OriginalID: "gh_test", Mode: wxsim.ModeSafe}
			reqs := make([]*wxsim.CallbackRequest, b.N)
			for i := range reqs {
				r, err := c.BuildOARequest(&wxsim.Message{FromUserName: fmt.Sprint("bench-user-", i%512), MsgType: "text", Content: "营业时间", MsgID: int64(1e12) + int64(i)})
				if err != nil {
					b.Fatal(err)
				}
				reqs[i] = r
			}
			client := &fasthttp.Client{MaxConnsPerHost: 512}
			var next, fails atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				for pb.Next() {
					r := reqs[next.Add(1)-1]
					req.Reset()
					req.Header.SetMethod("POST")
					req.SetRequestURI(r.URL)
					req.SetBody(r.Body)
					if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 || len(resp.Body()) < 100 {
						fails.Add(1)
					}
				}
			})
			b.StopTimer()
			if f := fails.Load(); f > 0 {
				b.Fatalf("%d of %d requests failed or got no passive reply", f, b.N)
			}
		})
	}
}

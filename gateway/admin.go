package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// serveAdmin exposes operator endpoints, guarded by a bearer token:
//
//	GET  /admin/deadletters                 list dead letters (JSON)
//	POST /admin/deadletters/replay?id=ID    replay one (repeat id=) or all (no id)
//
// and whatever AdminRoutes adds.
func (g *Gateway) serveAdmin(ctx *fasthttp.RequestCtx, path string) {
	auth := string(ctx.Request.Header.Peek("Authorization"))
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if g.AdminToken == "" || !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(g.AdminToken)) != 1 {
		ctx.SetStatusCode(fasthttp.StatusUnauthorized)
		ctx.SetBodyString("admin token required\n")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch {
	case path == "/admin/deadletters" && ctx.IsGet():
		d, err := g.Sender.DeadLetters(c)
		if err != nil {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString(err.Error() + "\n")
			return
		}
		b, _ := json.Marshal(d)
		ctx.SetContentType("application/json")
		ctx.SetBody(b)
	case path == "/admin/deadletters/replay" && ctx.IsPost():
		var ids []string
		for _, v := range ctx.QueryArgs().PeekMulti("id") {
			ids = append(ids, string(v))
		}
		n, err := g.Sender.Replay(c, ids...)
		if err != nil {
			ctx.SetStatusCode(fasthttp.StatusNotFound)
			ctx.SetBodyString(err.Error() + "\n")
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"replayed":` + strconv.Itoa(n) + "}")
	default:
		if h, ok := g.AdminRoutes[string(ctx.Method())+" "+path]; ok {
			h(ctx)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetBodyString("not found\n")
	}
}

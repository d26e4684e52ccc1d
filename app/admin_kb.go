package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"kefu/bot"
	"kefu/conv"
)

// kbAdminRoutes serve the bot's curation data to `kefu kb misses|tune`
// while the server runs. The server journals into the engine (the log
// bot:journal), which on the embedded engine only this process can read:
//
//	GET  /admin/kb/misses?since=168h              missed questions grouped (JSON)
//	GET  /admin/kb/tune?precision=0.9             a threshold proposal from the labels (JSON)
//	POST /admin/kb/link?question=Q&entry=ID&agent=A  propose Q as a similar question of ID
//	POST /admin/kb/draft?question=Q&answer=T&agent=A propose a new entry
//	GET  /admin/kb/suggestions                    proposals waiting for approval (JSON)
//	POST /admin/kb/approve?id=ID&agent=A          apply one (re-publishes, rewrites the KB file)
//	POST /admin/kb/reject?id=ID&agent=A           drop one
func kbAdminRoutes(b *bot.Bot, th bot.Thresholds) map[string]fasthttp.RequestHandler {
	fail := func(ctx *fasthttp.RequestCtx, code int, msg string) {
		ctx.SetStatusCode(code)
		ctx.SetBodyString(msg + "\n")
	}
	reply := func(ctx *fasthttp.RequestCtx, v any) {
		body, err := json.Marshal(v)
		if err != nil {
			fail(ctx, fasthttp.StatusInternalServerError, err.Error())
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}
	arg := func(ctx *fasthttp.RequestCtx, name string) string { return string(ctx.QueryArgs().Peek(name)) }
	// curation runs one curation call and answers its result; bad input
	// and unknown ids are the operator's to fix (400/404), anything else is
	// the engine's (503).
	curation := func(ctx *fasthttp.RequestCtx, call func(c context.Context) (any, error)) {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		v, err := call(c)
		switch {
		case errors.Is(err, conv.ErrBadInput):
			fail(ctx, fasthttp.StatusBadRequest, err.Error())
		case errors.Is(err, conv.ErrNotFound):
			fail(ctx, fasthttp.StatusNotFound, err.Error())
		case err != nil:
			fail(ctx, fasthttp.StatusServiceUnavailable, err.Error())
		default:
			reply(ctx, v)
		}
	}
	return map[string]fasthttp.RequestHandler{
		"POST /admin/kb/link": func(ctx *fasthttp.RequestCtx) {
			curation(ctx, func(c context.Context) (any, error) {
				return b.LinkMiss(c, arg(ctx, "question"), arg(ctx, "entry"), arg(ctx, "agent"))
			})
		},
		"POST /admin/kb/draft": func(ctx *fasthttp.RequestCtx) {
			curation(ctx, func(c context.Context) (any, error) {
				return b.DraftEntry(c, arg(ctx, "question"), arg(ctx, "answer"), arg(ctx, "agent"))
			})
		},
		"GET /admin/kb/suggestions": func(ctx *fasthttp.RequestCtx) {
			curation(ctx, func(c context.Context) (any, error) {
				s, err := b.Suggestions(c)
				if s == nil {
					s = []bot.Record{}
				}
				return s, err
			})
		},
		"POST /admin/kb/approve": func(ctx *fasthttp.RequestCtx) {
			curation(ctx, func(c context.Context) (any, error) { return b.Approve(c, arg(ctx, "id"), arg(ctx, "agent")) })
		},
		"POST /admin/kb/reject": func(ctx *fasthttp.RequestCtx) {
			curation(ctx, func(c context.Context) (any, error) {
				id := arg(ctx, "id")
				sugg, err := b.Suggestions(c)
				if err != nil {
					return nil, err
				}
				if !slices.ContainsFunc(sugg, func(r bot.Record) bool { return r.ID == id }) {
					return nil, fmt.Errorf("suggestion %q: %w", id, conv.ErrNotFound)
				}
				return map[string]string{"rejected": id}, b.Reject(c, id, arg(ctx, "agent"))
			})
		},
		"GET /admin/kb/misses": func(ctx *fasthttp.RequestCtx) {
			curation(ctx, func(c context.Context) (any, error) {
				since := 7 * 24 * time.Hour
				if v := arg(ctx, "since"); v != "" {
					d, err := time.ParseDuration(v)
					if err != nil || d <= 0 {
						return nil, fmt.Errorf("since: want a positive duration such as 168h: %w", conv.ErrBadInput)
					}
					since = d
				}
				return b.Misses(c, time.Now().Add(-since))
			})
		},
		"GET /admin/kb/tune": func(ctx *fasthttp.RequestCtx) {
			curation(ctx, func(c context.Context) (any, error) {
				prec := 0.9
				if v := arg(ctx, "precision"); v != "" {
					p, err := strconv.ParseFloat(v, 64)
					if err != nil || p <= 0 || p > 1 {
						return nil, fmt.Errorf("precision: want a number in (0,1]: %w", conv.ErrBadInput)
					}
					prec = p
				}
				recs, err := b.Journal().Records(c)
				if err != nil {
					return nil, err
				}
				return bot.Tune(b.Rescore(c, bot.Labels(recs)), th, prec), nil
			})
		},
	}
}

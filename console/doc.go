// Package console is the agent console: a web page served by the binary on
// its own net/http listener (assets embedded with go:embed, no CDN) and its
// JSON API, with live updates over server-sent events fed by engine
// pub/sub, so a change made on any instance reaches every browser.
//
// Logins come from console.users (bcrypt hashes made with HashPassword);
// sessions live in the engine (only a hash of the cookie is stored), so any
// instance serves them; they expire after session_ttl. Every state-changing
// API call carries the session's CSRF token in X-CSRF-Token; cookies are
// HttpOnly and SameSite=Strict. Roles: agent, supervisor, store_manager,
// admin (conv.Role); the desk enforces per-conversation rules (stores,
// ownership) itself.
//
// # Wiring (app)
//
//	con, err := console.New(cfg.Console, console.Deps{
//		Engine:   eng,
//		Desk:     desk, // *handoff.Service
//		KB: console.KBSearchFunc(func(ctx context.Context, text string, store conv.StoreID, k int) []console.Suggestion {
//			var out []console.Suggestion
//			for _, c := range bot.Search(ctx, text, store, true, k) {
//				out = append(out, console.Suggestion{EntryID: c.EntryID, Question: c.Question,
//					Answer: c.Answer, Category: c.Category, Score: c.Score})
//			}
//			return out
//		}),
//		Profiles: nil, // surveys implements ProfileSource later; nil shows "—"
//		Stores:   tree,
//		Logger:   log,
//	})
//	con.Mount("/surveys/", surveys.Handler(), conv.RoleStoreManager, conv.RoleSupervisor, conv.RoleAdmin)
//	con.MountPublic("/surveys/claim", surveys.Handler()) // signed links, no login
//	services.Go(func() error { return con.Run(svcCtx) }) // listens on console.listen
//
// The desk's roster is cfg.Console.Agents() (agents and supervisors).
// HashPassword is the helper behind a `kefu console hash-password` command.
//
// # API
//
//	POST /api/login                 {"user","password"} → sets the session; returns me
//	POST /api/logout
//	GET  /api/me                    principal, csrf, dispositions
//	GET  /api/queue                 {queue, mine, ongoing}
//	GET  /api/chats/{id}            {conv, transcript, quota, history, profile, suggestions}
//	POST /api/chats/{id}/accept
//	POST /api/chats/{id}/reply      {"client_id","text"} (client_id makes a retry send once)
//	POST /api/chats/{id}/note       {"text"}
//	POST /api/chats/{id}/transfer   {"to": agent | "queue" | "queue:<skill>", "reason"}
//	POST /api/chats/{id}/close      {"disposition": one of conv.WorkOrderTypes, "resolved": bool}
//	POST /api/chats/{id}/assign     {"agent"}  supervisors
//	POST /api/chats/{id}/takeover              supervisors
//	GET  /api/kb?q=&store=          KB search
//	GET  /api/agents                agents and their load
//	POST /api/status                {"status": "online" | "away" | "offline"}
//	GET  /api/tickets               work orders (closed hours, full queue, timeout)
//	GET  /api/events                SSE: "hello", then "update" {kind, conv, store, agent, state}
//
// Errors are {"error": "..."} with 400 (bad input), 401 (not logged in),
// 403 (role, store, ownership or CSRF), 404, 409 (state changed, quota or
// window), 429 (login lockout), 503 (engine unavailable).
package console

package app

import (
	"context"
	"fmt"
	"time"

	"kefu/bot"
	"kefu/console"
	"kefu/conv"
	"kefu/handoff"
	"kefu/report"
	"kefu/surveys"
)

// buildDomains wires the human desk, the console, surveys and reports to
// the gateway, the bot and each other. Domains never import each other;
// every cross-domain effect is one of the hooks set here:
//
//	bot hands over      → desk.Handoff, surveys.NoteHandoff
//	bot turn            → transcript, surveys.NoteBotTurn (bot-only contacts)
//	contact ended       → surveys.Schedule (desk.OnClosed)
//	outbound result     → surveys.OutboundResult (survey not sent reasons)
//	unsubscribe         → delete transcript, survey data, bot memory, quota book
func (a *App) buildDomains(tree *conv.StoreTree) error {
	cfg, eng, gw, log := a.Cfg, a.Engine, a.Gateway, a.Log

	desk, err := handoff.New(cfg.Handoff, handoff.Deps{
		Engine: eng, Sender: gw.Sender, KF: gw, Stores: tree,
		Agents: cfg.Console.Agents(), Emit: a.events.emit, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	a.Desk = desk

	svCfg := cfg.Surveys
	if svCfg.Stores.ID == "" {
		svCfg.Stores = cfg.Stores
	}
	sv, err := surveys.New(svCfg, eng, gw.Sender, surveys.Options{
		Emit: a.events.emit, Logger: log, KFServiceState: gw.KFServiceState, Registry: a.registry,
	})
	if err != nil {
		return fmt.Errorf("surveys: %w", err)
	}
	a.Surveys = sv

	r := a.Router
	// PRODUCT.md §2: conversation with a human? → pending survey answer? → bot.
	r.stages = append([]Stage{desk, sv}, r.stages...)
	r.OnHandoff = func(ctx context.Context, msg conv.Message, d bot.Decision) error {
		if err := sv.NoteHandoff(ctx, msg.Customer); err != nil {
			log.Warn("surveys: note handoff", "err", err)
		}
		return desk.Handoff(ctx, msg, d.Reason)
	}
	r.OnAgentOrigin = desk.AgentMessage
	r.OnBotTurn = append(r.OnBotTurn, func(ctx context.Context, msg conv.Message, d bot.Decision) {
		turns := []conv.Turn{{At: msg.CreatedAt, Role: conv.TurnCustomer, Text: msg.Text, Kind: msg.Kind, MsgID: msg.ID}}
		if d.Reply.Text != "" {
			turns = append(turns, conv.Turn{At: time.Now(), Role: conv.TurnBot, Text: d.Reply.Text, EntryID: d.EntryID, Intent: d.Reason})
		}
		if err := desk.Transcripts.AppendMany(ctx, msg.Customer, turns...); err != nil {
			log.Warn("transcript append failed", "err", err)
		}
		if d.Action != bot.ActHandoff {
			if err := sv.NoteBotTurn(ctx, msg, d.EntryID); err != nil {
				log.Warn("surveys: note bot turn", "err", err)
			}
		}
	})
	// WECHAT.md §4.3/§8: while the bot serves a KF customer the session is
	// kept in state 1 (由智能助手接待), so WeChat's client shows who is
	// serving and later moves (queue 2, human 3, end 4) start from there.
	kfBot := newKFBotState(eng, gw, log)
	r.OnBotTurn = append(r.OnBotTurn, func(ctx context.Context, msg conv.Message, d bot.Decision) {
		switch {
		case msg.ChannelType != conv.ChannelWeComKF:
		case d.Action == bot.ActHandoff:
			kfBot.forget(ctx, msg)
		default:
			kfBot.ensure(ctx, msg)
		}
	})
	r.OnUnsubscribe = append(r.OnUnsubscribe, desk.Forget, sv.ForgetCustomer)
	desk.OnClosed(func(ctx context.Context, ended conv.ContactEnded) {
		if err := sv.Schedule(ctx, ended); err != nil {
			log.Error("surveys: schedule", "conv", ended.Conv, "err", err)
		}
	})
	prev := gw.Sender.OnResult
	gw.Sender.OnResult = func(job conv.Outbound, err error) {
		if prev != nil {
			prev(job, err)
		}
		sv.OutboundResult(job, err)
	}

	rep, err := report.New(context.Background(), eng, tree, cfg.Report, report.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	a.Reporter = rep
	a.registry.MustRegister(rep.Collector())

	con, err := console.New(cfg.Console, console.Deps{
		Engine: eng, Desk: desk, Stores: tree, Logger: log, Profiles: surveyProfile{sv},
		KB: console.KBSearchFunc(func(ctx context.Context, text string, store conv.StoreID, k int) []console.Suggestion {
			var out []console.Suggestion
			for _, c := range a.Bot.Search(ctx, text, store, true, k) {
				out = append(out, console.Suggestion{EntryID: c.EntryID, Question: c.Question, Answer: c.Answer, Category: c.Category, Score: c.Score})
			}
			return out
		}),
	})
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	con.Mount("/surveys/", sv.Handler(), conv.RoleStoreManager, conv.RoleSupervisor, conv.RoleAdmin)
	con.MountPublic("/surveys/claim", sv.Handler()) // signed one-tap claim links from alerts
	con.Mount("/reports/", report.NewDashboard(rep, deskLive{desk: desk, tree: tree, now: time.Now}), conv.RoleSupervisor, conv.RoleStoreManager, conv.RoleAdmin)
	a.Console = con
	return nil
}

// deskLive adapts the human desk to the dashboard's live view.
type deskLive struct {
	desk *handoff.Service
	tree *conv.StoreTree
	now  func() time.Time
}

// Live counts waiting customers, the longest wait and agents online/busy
// in stores (nil: all), read as an admin would see them.
func (l deskLive) Live(ctx context.Context, stores []conv.StoreID) (report.LiveQueue, error) {
	admin := conv.Principal{User: "dashboard", Role: conv.RoleAdmin}
	in := func(s conv.StoreID) bool {
		if len(stores) == 0 {
			return true
		}
		for _, scope := range stores {
			if s == scope || l.tree.Within(s, scope) {
				return true
			}
		}
		return false
	}
	var out report.LiveQueue
	queued, err := l.desk.Queue(ctx, admin)
	if err != nil {
		return out, err
	}
	now := l.now()
	for _, c := range queued {
		if !in(c.Store) {
			continue
		}
		out.QueueLength++
		if w := now.Sub(c.QueuedAt); w > out.LongestWait {
			out.LongestWait = w
		}
	}
	agents, err := l.desk.Agents(ctx, admin)
	if err != nil {
		return out, err
	}
	for _, ag := range agents {
		mine := len(ag.Stores) == 0
		for _, s := range ag.Stores {
			mine = mine || in(s)
		}
		if !mine || ag.Status != conv.AgentOnline {
			continue
		}
		out.AgentsOnline++
		if len(ag.Chats) > 0 {
			out.AgentsBusy++
		}
	}
	return out, nil
}

// surveyProfile adapts surveys to the console's customer profile: the
// customer's detractor cases (open ones as open cases, all as past scores).
// Scores of surveys that opened no case are not indexed per customer yet,
// so passives and promoters do not show here.
type surveyProfile struct{ sv *surveys.Service }

// Profile implements console.ProfileSource.
func (p surveyProfile) Profile(ctx context.Context, customer conv.CustomerID) (console.Profile, error) {
	cases, err := p.sv.Cases(ctx, surveys.CaseFilter{Limit: 500})
	if err != nil {
		return console.Profile{}, err
	}
	var out console.Profile
	for _, c := range cases {
		if c.Customer != customer {
			continue
		}
		out.Surveys = append(out.Surveys, console.SurveyScore{Score: c.Score, Comment: c.Comment, At: c.OpenedAt})
		if c.State != "closed" {
			out.OpenCases = append(out.OpenCases, console.CaseSummary{ID: c.ID, State: c.State, Store: string(c.Store), Due: c.Deadline})
		}
	}
	return out, nil
}

package app

import (
	"context"
	"fmt"

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
		Emit: a.events.emit, Logger: log, KFServiceState: gw.KFServiceState,
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
		text := msg.Text
		_ = desk.Transcripts.Append(ctx, msg.Customer, conv.Turn{At: msg.CreatedAt, Role: conv.TurnCustomer, Text: text, Kind: msg.Kind, MsgID: msg.ID})
		if d.Reply.Text != "" {
			_ = desk.Transcripts.Append(ctx, msg.Customer, conv.Turn{At: a.now(), Role: conv.TurnBot, Text: d.Reply.Text, EntryID: d.EntryID, Intent: d.Reason})
		}
		if d.Action != bot.ActHandoff {
			if err := sv.NoteBotTurn(ctx, msg, d.EntryID); err != nil {
				log.Warn("surveys: note bot turn", "err", err)
			}
		}
	})
	r.OnUnsubscribe = append(r.OnUnsubscribe, desk.Transcripts.Delete, sv.ForgetCustomer)
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
		Engine: eng, Desk: desk, Stores: tree, Logger: log,
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
	con.Mount("/reports/", report.NewDashboard(rep, nil), conv.RoleSupervisor, conv.RoleStoreManager, conv.RoleAdmin)
	a.Console = con
	return nil
}

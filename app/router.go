package app

import (
	"context"
	"log/slog"
	"strconv"
	"strings"

	"kefu/bot"
	"kefu/conv"
)

// eventLog is the engine log every domain appends its events to; the
// report package reads it.
const eventLog = "events"

// Stage is one step of the router in front of the bot: it either takes the
// message (handled=true) or passes it on. Handoff (a conversation with a
// human) and surveys (a pending survey answer) plug in as stages.
type Stage interface {
	Route(ctx context.Context, msg conv.Message) (replies []conv.Reply, handled bool, err error)
}

// Router sends an accepted message through the stages, then to the bot
// (PRODUCT.md §2): conversation with a human? → pending survey answer? → bot.
type Router struct {
	stages   []Stage
	bot      *bot.Bot
	messages MessagesConfig
	log      *slog.Logger
	events   *eventWriter
	// OnHandoff is told when the bot hands a customer over; the handoff
	// domain queues the conversation.
	OnHandoff func(ctx context.Context, msg conv.Message, d bot.Decision) error
	// OnBotTurn is told about every message the bot handled and its
	// decision (transcript, bot-only contact tracking for surveys).
	OnBotTurn []func(ctx context.Context, msg conv.Message, d bot.Decision)
	// OnAgentOrigin takes KF messages an agent typed in the WeCom client
	// (origin 5): they belong to the transcript, not to the bot.
	OnAgentOrigin func(ctx context.Context, msg conv.Message) error
	// OnUnsubscribe deletes the customer's personal data (WeChat requires it).
	OnUnsubscribe []func(ctx context.Context, c conv.CustomerID) error
}

// Handle implements gateway.Handler.
func (r *Router) Handle(ctx context.Context, msg conv.Message) ([]conv.Reply, error) {
	replies, after, err := r.HandleDeferred(ctx, msg)
	if after != nil {
		after(ctx)
	}
	return replies, err
}

// keyReader is implemented by stages that know which engine keys their
// Route reads first for a message (see ReadAheadKeys).
type keyReader interface {
	ReadAheadKeys(msg conv.Message) []string
}

// ReadAheadKeys implements gateway.ReadAhead: the keys handle will read
// for msg, in order — each stage's, then the bot's memory of the customer
// — so that a Redis-backed gateway reads them in the dedupe record's round
// trip instead of one round trip after another.
func (r *Router) ReadAheadKeys(msg conv.Message) []string {
	if msg.ChannelType == conv.ChannelWeComKF && msg.Origin == 5 {
		return nil // the transcript's, not the stages'
	}
	var keys []string
	for _, s := range r.stages {
		if kr, ok := s.(keyReader); ok {
			keys = append(keys, kr.ReadAheadKeys(msg)...)
		}
	}
	if msg.HasText() {
		keys = append(keys, r.bot.StateKeys(msg.Customer)...)
	}
	return keys
}

// HandleDeferred implements gateway.Deferrer: bookkeeping hooks that the
// answer does not depend on (OnBotTurn: transcript, bot-only contact
// tracking) are returned as after, so the passive reply does not wait for
// their durable writes.
func (r *Router) HandleDeferred(ctx context.Context, msg conv.Message) ([]conv.Reply, func(context.Context), error) {
	var later []func(context.Context)
	replies, err := r.handle(ctx, msg, &later)
	if len(later) == 0 {
		return replies, nil, err
	}
	return replies, func(ctx context.Context) {
		for _, f := range later {
			f(ctx)
		}
	}, err
}

func (r *Router) handle(ctx context.Context, msg conv.Message, later *[]func(context.Context)) ([]conv.Reply, error) {
	r.emit(ctx, conv.Event{Type: conv.EvMessageReceived, Customer: msg.Customer, Store: msg.Store, Channel: msg.Channel,
		Data: map[string]string{"kind": string(msg.Kind), "msg_id": msg.ID, "origin": strconv.Itoa(msg.Origin)}})
	// KF messages typed by an agent in the WeCom client (origin 5) and
	// system events belong to the transcript, not to the bot.
	if msg.ChannelType == conv.ChannelWeComKF && msg.Origin == 5 {
		if r.OnAgentOrigin != nil {
			return nil, r.OnAgentOrigin(ctx, msg)
		}
		return nil, nil
	}
	for _, s := range r.stages {
		replies, handled, err := s.Route(ctx, msg)
		if err != nil {
			return nil, err
		}
		if handled {
			return replies, nil
		}
	}
	switch msg.Kind {
	case conv.MsgEvent:
		return r.event(ctx, msg)
	case conv.MsgText:
		return r.ask(ctx, msg, msg.Text, later)
	case conv.MsgVoice:
		if strings.TrimSpace(msg.Text) != "" { // WeChat's speech recognition
			return r.ask(ctx, msg, msg.Text, later)
		}
	}
	if r.messages.NonText == "" {
		return nil, nil
	}
	return []conv.Reply{conv.Text(r.messages.NonText)}, nil
}

func (r *Router) event(ctx context.Context, msg conv.Message) ([]conv.Reply, error) {
	switch msg.Event {
	case "subscribe":
		if r.messages.Welcome != "" {
			return []conv.Reply{conv.Text(r.messages.Welcome)}, nil
		}
	case "unsubscribe":
		for _, f := range r.OnUnsubscribe {
			if err := f(ctx, msg.Customer); err != nil {
				return nil, err
			}
		}
	}
	return nil, nil
}

func (r *Router) ask(ctx context.Context, msg conv.Message, text string, later *[]func(context.Context)) ([]conv.Reply, error) {
	d, err := r.bot.Respond(ctx, bot.Query{Text: text, Store: msg.Store, Customer: msg.Customer, Channel: msg.Channel})
	if err != nil {
		return nil, err
	}
	ev := conv.Event{Customer: msg.Customer, Store: msg.Store, Channel: msg.Channel,
		Data: map[string]string{"entry": d.EntryID, "score": strconv.FormatFloat(d.Score, 'f', 3, 64), "reason": d.Reason}}
	switch d.Action {
	case bot.ActAnswer:
		ev.Type = conv.EvBotAnswered
	case bot.ActClarify:
		ev.Type = conv.EvBotClarify
	case bot.ActHandoff:
		ev.Type = conv.EvHandoffRequested
	default:
		ev.Type = conv.EvBotFallback
	}
	r.emit(ctx, ev)
	for _, f := range r.OnBotTurn {
		*later = append(*later, func(ctx context.Context) { f(ctx, msg, d) })
	}
	if d.Action == bot.ActHandoff && r.OnHandoff != nil {
		if err := r.OnHandoff(ctx, msg, d); err != nil {
			return nil, err
		}
		// The desk tells the customer their queue position (or why no
		// human can come); the bot's generic text would be a second,
		// quota-eating message saying less.
		return nil, nil
	}
	if d.Reply.Kind == "" && d.Reply.Text == "" {
		return nil, nil
	}
	return []conv.Reply{d.Reply}, nil
}

// emit hands an event to the background writer.
func (r *Router) emit(_ context.Context, ev conv.Event) { r.events.emit(ev) }

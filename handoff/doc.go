// Package handoff is kefu's human desk: conversation states (bot → queued →
// assigned → closed, or abandoned; transfers logged), queues per store and
// skill with business hours, capacity and a maximum wait, assignment of
// chats to agents (least busy first, round robin among equals, never above
// an agent's cap, re-offered when not accepted in time), per-customer
// transcripts, tickets when no human can come, and durable timers (queue
// timeout, offer timeout, no-reply reminder, idle close).
//
// All state lives in the engine (embedded or Redis), so several instances
// share one desk: an assignment is one engine.Update over the conversation
// and the agent that re-checks state and cap, so no chat is ever assigned
// twice; timers are engine queue jobs claimed with a lease and guarded by
// the conversation's version, so each fires once.
//
// # Wiring (app)
//
// The app builds one Service and plugs it into the router, the console and
// its service group:
//
//	desk, err := handoff.New(cfg.Handoff, handoff.Deps{
//		Engine: eng,
//		Sender: gw.Sender,            // *gateway.Sender: Send + Quota
//		KF:     gw,                   // *gateway.Gateway: KFTransfer (optional)
//		Stores: tree,                 // *conv.StoreTree: hours, holidays, scopes
//		Agents: cfg.Console.Agents(), // roster from console.users
//		Emit:   events.emit,          // func(conv.Event)
//		Logger: log,
//	})
//	// 1. First router stage: customers with a queued or assigned
//	//    conversation talk to the desk, not the bot.
//	router.stages = append([]Stage{desk}, router.stages...)
//	// 2. The bot's handoff decision queues the customer. On WeChat KF the
//	//    bot's own "transferring" reply must not be sent (send_msg is
//	//    refused in state 2): skip it when handoff.QueueNoticeReplacesReply(msg).
//	router.OnHandoff = func(ctx context.Context, msg conv.Message, d bot.Decision) error {
//		return desk.Handoff(ctx, msg, d.Reason)
//	}
//	// 3. Transcript: every customer message that goes to the bot, and every
//	//    bot reply (messages the desk routes are recorded by the desk).
//	desk.Transcripts.Append(ctx, msg.Customer, conv.Turn{At: msg.CreatedAt, Role: conv.TurnCustomer,
//		Text: msg.Text, Kind: msg.Kind, MsgID: msg.ID})
//	desk.Transcripts.Append(ctx, msg.Customer, conv.Turn{Role: conv.TurnBot, Text: d.Reply.Text,
//		EntryID: d.EntryID, Intent: d.Reason})
//	// 4. KF origin-5 messages (an agent typing in the WeCom client) go to
//	//    the transcript instead of being dropped.
//	if msg.ChannelType == conv.ChannelWeComKF && msg.Origin == 5 {
//		return nil, desk.AgentMessage(ctx, msg)
//	}
//	// 5. Unsubscribe deletes the customer's data (transcript, ended
//	//    conversations, send book).
//	router.OnUnsubscribe = append(router.OnUnsubscribe, desk.Forget)
//	// 6. Contact ended (closed or abandoned): e.g. schedule the NPS survey.
//	desk.OnClosed(surveys.Schedule)
//	// 7. Timers and dispatch.
//	services.Go(func() error { return desk.Run(svcCtx) })
//	// 8. Console: *handoff.Service implements console.Desk.
//	con, err := console.New(cfg.Console, console.Deps{Engine: eng, Desk: desk, …})
//
// A queue skill may be asked for with msg.Extra[handoff.SkillExtra]. An OA
// unsubscribe abandons the conversation and Route returns handled=false so
// the router still deletes the user's data.
//
// Channel rules: OA/JSON agent replies go out as conv.Outbound (Kind
// customer, TriggerAt = the customer's last message) and the reply box shows
// Sender.Quota; the queue notice costs one OA send per handoff and a
// "still queued" reply at most one per customer message and NoticeEvery.
// KF: handoff moves the session to state 2 and sends the queue notice with
// its msg_code (send_msg_on_event); accept moves it to 3 with the agent's
// WeCom userid, after which the agent answers from the WeCom client (the
// platform refuses send_msg in state 3) and those messages reach the
// transcript through AgentMessage; closing moves it to 4 and hands the
// end-of-session code to OnClosed hooks (ContactEnded.KFCode).
package handoff

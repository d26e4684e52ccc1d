// Package surveys sends an NPS survey after every eligible contact, parses
// the answer in chat, reports NPS, and closes the loop on detractors with a
// case owned by the store manager (PRODUCT.md §6–7).
//
// # Wiring (app is the only caller; surveys imports conv and engine only)
//
// Build one Service per process, on the shared engine and the gateway's
// sender (*gateway.Sender implements Sender and the optional QuotaChecker):
//
//	func New(cfg Config, eng engine.Engine, sender Sender, opts Options) (*Service, error)
//	type Sender interface { Send(ctx context.Context, out conv.Outbound) error }
//	type QuotaChecker interface { Quota(ctx context.Context, channel, user string, lastMsg time.Time) (remaining int, until time.Time, err error) }
//	type Options struct {
//		Emit        func(conv.Event)                                   // → the event log
//		Now         func() time.Time                                   // clock (default time.Now)
//		Logger      *slog.Logger
//		Identity    func(conv.CustomerID) string                       // brand-wide identity (default: the id)
//		HasOpenCase func(ctx context.Context, c conv.CustomerID) (bool, error) // complaint work orders kept elsewhere
//		OnDetractor func(ctx context.Context, c Case)                  // told after a case opens
//		KFServiceState func(ctx context.Context, channel, openKfID, externalUser string) (int, string, error) // gw.KFServiceState
//		HTTPClient  *http.Client                                       // generic webhooks
//		Registry    prometheus.Registerer                              // kefu_survey_events_total{type,reason}, kefu_survey_timers
//	}
//
// Hooks and services:
//
//	func (s *Service) Schedule(ctx context.Context, ce conv.ContactEnded) error        // handoff: agent close / abandon
//	func (s *Service) NoteBotTurn(ctx context.Context, msg conv.Message, entryID string) error // router: after each bot answer
//	func (s *Service) NoteHandoff(ctx context.Context, c conv.CustomerID) error       // router: the bot handed over
//	func (s *Service) Route(ctx context.Context, msg conv.Message) ([]conv.Reply, bool, error) // app.Stage, after handoff's stage
//	func (s *Service) OutboundResult(job conv.Outbound, err error)                    // chain into gateway.Sender.OnResult:
//	                                                                                  // survey_sent on delivery, not-sent reasons
//	func (s *Service) ForgetCustomer(ctx context.Context, c conv.CustomerID) error    // Router.OnUnsubscribe
//	func (s *Service) Run(ctx context.Context) error                                  // durable timers; run on every instance
//	func (s *Service) Handler() http.Handler                                          // mount at /surveys/ behind console auth;
//	                                                                                  // /surveys/claim public (signed links)
//	func (s *Service) OnDetractor(ctx context.Context, sv Survey) (Case, error)       // opens the case (Route calls it)
//	func (s *Service) UpdateCase(ctx context.Context, id, actor string, u CaseUpdate) (Case, error)
//	func (s *Service) Cases(ctx context.Context, f CaseFilter) ([]Case, error)
//	func ReportNPS(args []string, stdout, stderr io.Writer, eng engine.Engine, cfg Config) int // `kefu report nps`
//	func LoadResponses(ctx context.Context, eng engine.Engine) ([]Response, error)    // Go API for reports
//	func BuildReport(resps []Response, tree *conv.StoreTree, q Query) ([]Row, error)
//	func WriteCSV(w io.Writer, by string, rows []Row) error
//	func ParseReply(text string, optOut []string) Parsed
//
// In app.Build, roughly:
//
//	sv, err := surveys.New(cfg.Surveys, eng, gw.Sender, surveys.Options{Emit: a.events.emit, Logger: log, KFServiceState: gw.KFServiceState})
//	prev := gw.Sender.OnResult
//	gw.Sender.OnResult = func(j conv.Outbound, err error) { prev(j, err); sv.OutboundResult(j, err) }
//	router.stages = []Stage{handoffStage, sv}            // PRODUCT.md §2 order
//	router.OnUnsubscribe = append(router.OnUnsubscribe, sv.ForgetCustomer)
//	handoff.OnClosed(sv.Schedule)                         // and call sv.NoteHandoff when the bot hands over
//	services.Go(func() error { return sv.Run(svcCtx) })
//
// Router changes for bot-only contacts: after a bot answer call
// sv.NoteBotTurn(ctx, msg, d.EntryID); on ActionHandoff call
// sv.NoteHandoff(ctx, msg.Customer).
//
// # Behaviour
//
// Scheduling: Schedule is idempotent per contact (the survey id derives
// from the conversation id). The survey is due EndedAt + Delay, except on
// WeChat KF with an end-of-session code (ContactEnded.KFCode): that code is
// valid 20 s for one message, so the survey goes at once through
// send_msg_on_event (conv.OutKFEvent); if the code cannot be used (expired,
// quiet hours) and the session is in state 0/1 it falls back to send_msg.
// Without a code KF uses send_msg and
// OA uses custom/send (conv.OutCustomer, TriggerAt = LastCustomerMsgAt);
// json and wecom_app channels use their callback / app message.
//
// Governance, checked when the survey is due, in this order, each failing
// survey getting an EvSurveyNotSent event with Reason: opted_out (the
// identity said 退订), case_open (a detractor case of ours, or
// Options.HasOpenCase), window_expired (48 h after the customer's last
// message on OA/KF; the code's 20 s on KF), quota_exhausted (the sender's
// book says the 5 messages are used), quiet_hours (in quiet hours and the
// window closes before they end — otherwise the survey is deferred to the
// end of quiet hours), throttled (one survey per identity per ThrottleDays,
// claimed atomically so two instances cannot both send). A survey the
// sender gives up on becomes not sent with the sender's reason
// (window_expired, quota_exhausted, send_failed:<errcode>) and frees the
// throttle slot. Sent surveys never answered get EvSurveyUnanswered with
// Reason expired, reopened (the customer asked something else), opted_out
// or unparseable.
//
// Chat flow: question → score ("3分，等太久了" carries the reason too) →
// "why?" when the reason is missing → for detractors "when may the
// manager call?" (Question.ContactTime, "" to skip) → thanks. The reason
// and the call-back time reach the managers with the alert or as updates.
//
// The question is text on every channel by default. A 0–10 scale has 11
// choices and a KF msgmenu holds at most 10, and a two-step menu would burn
// the single-use end-of-session code on the first step; Question.Style
// "menu" sends OA customers an 11-item msgmenu (numeric ids 900…910, as OA reports taps as bizmsgmenuid), which
// sandbox accounts reject with 40200. Replies are parsed by ParseReply.
//
// Exactly once across instances: timers live in the engine's leased queue
// (sv:q); every transition is a compare-and-swap on the survey or case
// record; outbound IDs derive from survey, case, alert kind and recipient,
// so the sender delivers each once.
//
// Cases: a score ≤ DetractorMax opens a case (CAS-created, id from the
// survey), blocks further surveys for the identity until resolved, and
// alerts the store's managers after Alerts.Hold (at once when the reply
// carried a comment) on every route they have: WeCom app message and group
// robot (both batched per recipient: one post per RobotBatchEvery, pending
// alerts together, because robots take 20/min and WeCom silently drops app
// messages beyond 30/min/member), OA template message, and a signed generic
// webhook (HMAC-SHA256, retried).
// Reminders go out before the deadline; an overdue case escalates one level
// up the store tree per deadline (region, then HQ). Closing needs a root
// cause and an outcome from the configured lists. With Cases.ReSurvey a
// resolved case re-surveys the customer and counts a recovered detractor.
//
// Engine keys: sv:s:<survey>, sv:p:<customer>, sv:t:<identity>,
// sv:o:<identity>, sv:co:<identity>, sv:b:<customer>, sv:c:<case>, sv:cases,
// sv:bq:/sv:bt:/sv:bl:<recipient> (alert batches), sv:aq:<alert>, sv:hk:<delivery>,
// queue sv:q, log sv:log (what reports read).
package surveys

// Package report computes kefu's KPIs and the contact funnel from the domain
// event log (engine log "events", JSON-encoded conv.Event, appended by every
// domain) and serves them to supervisors: a dashboard (NewDashboard), a CLI
// (RunCLI), CSV exports and Prometheus series (Reporter.Collector).
//
// # Incremental aggregation
//
// A Reporter keeps per-bucket counters — one bucket per (day, store, channel,
// agent) — plus the state of contacts and cases that are still open, and a
// cursor: the ID of the last log record folded in. Refresh reads only the
// records after the cursor. Counters, open state and cursor are persisted in
// the engine in one hash ("report:state"); each write is one HSet that
// carries the cursor with the counters it covers (every page when caught
// up, every 10 pages while catching up), so a crash never counts a record
// twice. Counters older than Config.KeepDays are dropped; the event log
// itself is trimmed by the Retention service (Config.RetentionDays).
//
// Several gateway instances may run a Reporter on one Redis: a lease
// ("report:lock") elects the one that persists; the others fold the same log
// in memory (the fold is deterministic, so they agree) and reload the
// persisted state when they take the lease over.
//
// Every measure is attributed to the bucket of its contact: the day (in
// Config.Location) the contact started, the contact's store and channel,
// and the agent the measure is about (the agent who picked up for service
// level and ASA, the closing agent for AHT, FCR and resolution, the agent
// stamped on the survey for NPS/CSAT). Bot-only measures have agent "".
// Filtering by agent therefore starts the funnel at "picked up".
//
// Changing a KPI parameter (service-level seconds, repeat window, …)
// changes its Definition (stored in "report:defs" with the time it was
// first used, shown next to every number); the Reporter then rebuilds its
// buckets from the retained log, because the counters were computed with
// the old parameters.
//
// Queries by store, period, trend and funnel read a day × store roll-up
// rebuilt once per refresh; by agent or channel they read the buckets.
//
// # Event contract
//
// The report relies on these events and fields (checked against handoff,
// surveys and app/router.go as of this writing). Fields marked (expected)
// are not produced yet; producers should add them. Every event should carry
// At, Conv, Customer, Store and Channel; Agent where an agent is involved.
//
//	message_received   a customer message (app/router.go). Data["origin"] "4"
//	                   (system) and "5" (agent in the WeCom client) and
//	                   Data["kind"] "event" (subscribe, clicks) are not customer
//	                   messages. Without Conv (the router today) the message is
//	                   "pending" until a bot or handoff event of the customer
//	                   claims it: a survey reply is therefore not a new contact.
//	                   The first customer message starts first-response time.
//	bot_answered       the bot answered; Data["entry"] = KB entry id. A contact
//	                   with a bot answer and no handoff is bot-contained.
//	bot_clarify        the bot asked to choose (counts as a first response).
//	bot_fallback       the bot could not answer (counts as a first response).
//	handoff_requested  the contact goes to humans (also a first response: the
//	                   customer is told so).
//	queued             queue entry; the first one starts ASA and service level.
//	assigned           routed to Agent (not yet a pickup).
//	accepted           Agent picked the conversation up: ends the wait. An
//	                   agent_reply before any accepted counts as the pickup.
//	transferred        Agent = the new owner. The previous owner is the last
//	                   Agent seen on the contact, or (optional) Data["from"].
//	                   ASA is not restarted; AHT goes to the closing agent.
//	agent_reply        an agent's message: the first response if none came
//	                   before; the first one after pickup is the agent first reply.
//	closed             the contact ended. Agent = closing agent; Reason = "agent",
//	                   "idle", "kf_session_ended", …; Data["disposition"] =
//	                   work-order type; Data["resolved"] = "true"/"false".
//	                   (expected) a bot-only contact that ends should be closed
//	                   with Data["outcome"] = "bot_idle" and its Conv; until
//	                   then the report ends it after Config.ContactIdle.
//	abandoned          ended before pickup; Reason = "customer_left",
//	                   "queue_timeout", … (the funnel's drop-off reasons).
//	survey_scheduled   a survey will be sent for Conv.
//	survey_sent        sent; Agent = the agent stamped at send time.
//	survey_not_sent    Reason = code ("frequency_cap", "complaint_open",
//	                   "quiet_hours", "opted_out", "window_closed", …).
//	survey_answered    Data["score"] = "0".."10". Data["kind"] = "re_survey"
//	                   (after a resolved case) counts a recovery, not NPS.
//	                   (optional) Data["csat"] = "1".."5" if a CSAT question
//	                   is ever asked; otherwise CSAT derives from the score.
//	case_opened        Data["case"] = case id (default Conv), Data["deadline"]
//	                   = RFC 3339 callback deadline (default At +
//	                   Config.CaseDeadline).
//	case_contacted     the manager called back (the first one counts).
//	                   (expected) surveys' "resolved" action sets ContactedAt
//	                   without emitting this; until it does, a case_closed
//	                   without a case_contacted counts its close time as the
//	                   callback (an upper bound).
//	case_escalated     the case went up the store tree.
//	case_closed        the case is closed.
//
// outbound_*, ticket_created, agent_status, offer_timeout, no_reply_warning
// and note do not change KPIs.
//
// # Contacts without Conv
//
// A bot or handoff event without Conv but with Customer belongs to the
// customer's open contact if it had activity within Config.ContactIdle;
// otherwise it starts a new contact (at the pending message, if any) with a
// synthetic id ("~" + customer + "@" + unix ms). The first event with a real
// Conv for that customer adopts the synthetic contact, so bot events from
// the router and queue events from handoff end up on one contact. A contact
// with no handoff and no activity for ContactIdle is ended as "bot_idle"; a
// handed-off contact with no end event for StaleAfter is ended as "stale"
// (abandoned if never picked up). Idle and stale endings are judged on the
// event-time clock (the latest event folded), so a replay gives the same
// numbers; a quiet night therefore ends the evening's bot-only contacts with
// the morning's first event.
package report

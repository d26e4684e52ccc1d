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
// the engine in one hash ("report:state") and written with one HSet per page
// of records, so a crash between pages never counts a record twice.
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
// changes its Definition; the Reporter then rebuilds its buckets from the
// retained log, because the counters were computed with the old parameters.
//
// # Event contract
//
// The report relies on these events and fields. Fields marked (expected)
// are not produced yet by every domain; producers should add them. Every
// event should carry At, Conv, Customer, Store and Channel; Agent where an
// agent is involved.
//
//	message_received   a customer message. Data["origin"]: "5" (an agent typing
//	                   in the WeCom client) is not a customer message. The first
//	                   customer message starts first-response time.
//	                   (expected) Conv: the router does not set it yet; events
//	                   without Conv are attached to the customer's open contact
//	                   (see Contacts without Conv below).
//	bot_answered       the bot answered; Data["entry"] = KB entry id. A contact
//	                   with a bot answer and no handoff is bot-contained.
//	bot_clarify        the bot asked to choose (counts as a first response).
//	bot_fallback       the bot could not answer (counts as a first response).
//	handoff_requested  the contact is handed to humans (also a first response:
//	                   the customer is told so).
//	queued             queue entry; the first one starts ASA and service level.
//	assigned           routed to Agent (not yet a pickup).
//	accepted           Agent picked the conversation up: ends the wait.
//	                   An agent_reply before any accepted counts as the pickup.
//	transferred        Agent is the new owner; (expected) Data["from"] = the
//	                   previous agent. ASA is not restarted.
//	agent_reply        an agent's message (first response if none came before).
//	closed             the contact ended. Agent = closing agent;
//	                   Data["disposition"] = work-order type; Data["resolved"] =
//	                   "true"/"false"; (expected) Data["outcome"] = "closed" or
//	                   "bot_idle" (a bot-only contact gone idle, Agent "").
//	abandoned          the customer left or the queue timed out before pickup;
//	                   Reason = "customer_left", "timeout", "out_of_hours", ….
//	survey_scheduled   a survey will be sent for Conv.
//	survey_sent        the survey was sent; Agent = agent stamped at send time.
//	survey_not_sent    not sent; Reason = code (e.g. "frequency_cap",
//	                   "complaint_open", "quiet_hours", "opted_out",
//	                   "window_closed", "quota").
//	survey_answered    Data["score"] = "0".."10"; (expected, optional)
//	                   Data["csat"] = "1".."5" when a CSAT question is asked.
//	case_opened        a detractor case for Conv. (expected) Data["case"] = case
//	                   id (default: Conv); (expected) Data["deadline"] =
//	                   RFC 3339 callback deadline (default At + Config.CaseDeadline).
//	case_contacted     the manager called the customer back (first one counts).
//	case_escalated     the case went up the store tree.
//	case_closed        the case is closed.
//
// outbound_sent and outbound_failed are not used by KPIs.
//
// # Contacts without Conv
//
// An event without Conv but with Customer belongs to the customer's open
// contact if it had activity within Config.ContactIdle; otherwise it starts
// a new contact with a synthetic id ("~" + customer + "@" + unix ms). The
// first event with a real Conv for that customer adopts the synthetic
// contact, so bot events from the router and queue events from handoff end
// up on one contact. A contact with no handoff and no activity for
// ContactIdle is ended as "bot_idle"; a handed-off contact with no end event
// for StaleAfter is ended as "stale" (abandoned if never picked up).
package report
